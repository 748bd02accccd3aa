package miner

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/data/datatest"
	"github.com/dtrain-dev/dtrain/torch"
)

// TestMain sets libtorch's thread count to one before any test touches a
// model. libtorch keeps the count of its OpenMP pool per calling OS
// thread, taken when that thread first runs parallel work: set later, by
// the first swarm, it left the threads an earlier test had used at the
// default, and the same training step rounded differently depending on
// the thread Go ran it on (TestSwarmDiLoCo's two runs, after
// TestOuterStepKeepsMomentum, differed in 69 of 807,680 parameters by a
// few ulps).
func TestMain(m *testing.M) {
	if err := torch.SetThreads(1); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func tinyMiner(mode string) config.Miner {
	c := config.DefaultMiner()
	c.RunID = "test-" + mode
	c.Model = config.Model{NLayer: 1, NHead: 2, NEmbd: 16, NPositions: 16, VocabSize: data.VocabSize}
	c.Data.SeqLen = 8
	c.Optim.LR, c.Optim.MinLR, c.Optim.WarmupSteps = 1e-2, 1e-3, 2
	c.Loop = config.Loop{MaxSteps: 12, BatchTokens: 32, MicroBatch: 4, EvalTokens: 64, KeepCheckpoints: 1, LogEvery: 1}
	c.Swarm.Mode, c.Swarm.InnerSteps, c.Swarm.MaxEpochs = mode, 3, 4
	c.Swarm.MatchSeconds, c.Swarm.RoundSeconds = 10, 30
	if mode == "gradients" {
		// About a second of the three test miners' micro-batches, so that
		// their progress reports, not each one's own count, end the epoch.
		c.Loop.MaxSteps, c.Swarm.MaxEpochs, c.Swarm.TargetBatchSize = 5, 5, 480
	}
	return c
}

// tinyData is a repetitive token stream, split into train and val shards.
func tinyData(t *testing.T) (train, val *data.Dataset) {
	return datatest.Split(t, 18000, 2000, 8)
}

// swarmHarness runs miners of one run in this process over loopback QUIC;
// the first one is the others' bootstrap peer.
type swarmHarness struct {
	t       *testing.T
	ctx     context.Context
	cfg     config.Miner
	tr, val *data.Dataset
	boot    []string
	wg      sync.WaitGroup
	mu      sync.Mutex
	events  [][]EpochEvent
	errs    []error
	nodes   []*netx.Node
}

func newHarness(t *testing.T, ctx context.Context, cfg config.Miner) *swarmHarness {
	tr, val := tinyData(t)
	return &swarmHarness{t: t, ctx: ctx, cfg: cfg, tr: tr, val: val}
}

// start builds miner i and runs it; onEpoch, if set, sees its events too.
func (h *swarmHarness) start(onEpoch func(EpochEvent)) int {
	i, _ := h.startIn(h.t.TempDir(), onEpoch)
	return i
}

// startIn is start with out_dir dir; kill stops the miner at once, as a
// crash would: its network goes away with whatever it was doing.
func (h *swarmHarness) startIn(dir string, onEpoch func(EpochEvent)) (i int, kill func()) {
	i, m, ctx, kill := h.add(dir, onEpoch)
	h.run(i, m, ctx)
	return i, kill
}

// add builds miner i with out_dir dir, without running it. Its node's
// identity is the key file in dir, as a production miner's is (swarm
// key_file, relative to out_dir): miner i of every swarm has the same
// peer id (testKey), so the same data lanes, and a miner restarted on its
// out_dir keeps its id. The miner runs under ctx; kill ends it and its
// node.
func (h *swarmHarness) add(dir string, onEpoch func(EpochEvent)) (i int, m *Miner, ctx context.Context, kill func()) {
	t := h.t
	h.mu.Lock()
	i = len(h.events)
	h.events, h.errs = append(h.events, nil), append(h.errs, nil)
	h.mu.Unlock()
	keyFile := filepath.Join(dir, "identity.key")
	if _, err := os.Stat(keyFile); errors.Is(err, os.ErrNotExist) {
		testKey(t, keyFile, i)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	nc := netx.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, DHTMode: netx.DHTServer, Bootstrap: h.boot, KeyFile: keyFile}
	nd, err := netx.New(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Close() })
	h.mu.Lock()
	if i == 0 {
		h.boot = []string{fmt.Sprintf("%s/p2p/%s", nd.Host().Addrs()[0], nd.ID())}
	}
	h.nodes = append(h.nodes, nd)
	h.mu.Unlock()
	c := h.cfg
	c.OutDir = dir
	log := zerolog.New(zerolog.NewTestWriter(t)).With().Int("miner", i).Timestamp().Logger().Level(zerolog.InfoLevel)
	m, err = New(ctx, Options{Config: c, Node: nd, Train: h.tr, Val: h.val, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.opts.Observer = func(ev EpochEvent) {
		h.mu.Lock()
		h.events[i] = append(h.events[i], ev)
		h.mu.Unlock()
		if onEpoch != nil {
			onEpoch(ev)
		}
	}
	// The host goes first, as in a crash: the miner's own shutdown would
	// otherwise leave the run's gossip properly (a gossipsub leave and
	// PRUNE to its mesh) before its connections close.
	return i, m, ctx, func() { nd.Host().Close(); cancel(); nd.Close() }
}

// run runs miner i, m, under ctx.
func (h *swarmHarness) run(i int, m *Miner, ctx context.Context) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		err := m.Run(ctx)
		h.mu.Lock()
		h.errs[i] = err
		h.mu.Unlock()
	}()
}

// testKey writes miner i's identity key to path: the Ed25519 key of a seed
// that depends on i alone.
func testKey(t *testing.T, path string, i int) {
	seed := sha256.Sum256([]byte(fmt.Sprintf("dtrain miner test %d", i)))
	key, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// wait waits for every miner to end, closes their nodes (so that a later
// swarm of the test may take their peer ids) and returns their epochs.
func (h *swarmHarness) wait() [][]EpochEvent {
	h.wg.Wait()
	for _, nd := range h.nodes {
		nd.Close()
	}
	for i, err := range h.errs {
		if err != nil {
			h.t.Fatalf("miner %d: %v", i, err)
		}
	}
	return h.events
}

// runSwarm runs n miners of cfg together and returns each one's epochs.
// So that a diloco swarm repeats its figures, each miner takes every
// inner step of every epoch (without the early stop when another
// announces it is ready, which makes the steps a matter of timing), and
// they start together once each one's gossip holds all the others, so
// that each one's first matchmaking waits for all of them (a miner counts
// its gossip neighbours that have not reported yet) and the first epoch's
// group is the whole swarm.
func runSwarm(t *testing.T, cfg config.Miner, n int) [][]EpochEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := newHarness(t, ctx, cfg)
	miners := make([]*Miner, n)
	ctxs := make([]context.Context, n)
	for i := range n {
		_, miners[i], ctxs[i], _ = h.add(t.TempDir(), nil)
		miners[i].fullEpochs = true
	}
	for _, m := range miners {
		for len(m.gossip.Peers()) < n-1 {
			select {
			case <-ctx.Done():
				t.Fatalf("a miner's gossip holds %d of the %d other miners", len(m.gossip.Peers()), n-1)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	for i, m := range miners {
		h.run(i, m, ctxs[i])
	}
	return h.wait()
}

// TestSwarmDiLoCo: three miners average every epoch in one group of three,
// hold the same parameters after every outer step (they start from the
// same seed and apply the same averaged pseudo-gradient), and the held-out
// loss falls. Run again, the swarm ends every epoch with the same
// parameters and held-out loss: the same miners (peer ids, so data lanes)
// take the same steps and average in the same group, so nothing in an
// epoch's outcome is left to timing.
func TestSwarmDiLoCo(t *testing.T) {
	cfg := tinyMiner("diloco")
	var runs [2][][]EpochEvent
	for r := range runs {
		t.Run(fmt.Sprint("run", r), func(t *testing.T) {
			runs[r] = runSwarm(t, cfg, 3)
			checkSwarm(t, runs[r], 4)
			for i, evs := range runs[r] {
				for e, ev := range evs {
					if want := int64(cfg.Swarm.InnerSteps * cfg.Loop.BatchTokens / cfg.Data.SeqLen); ev.Samples != want {
						t.Errorf("miner %d epoch %d: %d samples, want every inner step's, %d", i, e, ev.Samples, want)
					}
				}
			}
		})
	}
	if t.Failed() {
		return
	}
	for e, ev := range runs[1][0] {
		// Exact: both runs do the same computation in this process, with
		// one thread.
		if was := runs[0][0][e]; ev.ParamHash != was.ParamHash || ev.ValLoss != was.ValLoss {
			t.Errorf("epoch %d: parameters %s and held-out loss %v, the first run's %s and %v", e, ev.ParamHash, ev.ValLoss, was.ParamHash, was.ValLoss)
		}
	}
}

// TestSwarmGradients: the same for gradients mode, one averaged AdamW step
// per epoch, taken when the swarm's samples reach the target batch.
func TestSwarmGradients(t *testing.T) {
	cfg := tinyMiner("gradients")
	events := runSwarm(t, cfg, 3)
	checkSwarm(t, events, 5)
	for e := range events[0] {
		var sum int64
		for _, evs := range events {
			sum += evs[e].Samples
		}
		t.Logf("epoch %d: %d samples in all, target %d", e, sum, cfg.Swarm.TargetBatchSize)
		// The miners stop on an estimate from reports a fraction of a
		// second old (within 5% of the target here); each stopping at the
		// target alone would give 3 times it. The first epoch may come
		// close to that: its first micro-batches are the slowest (a second
		// each under the rest of the suite's load), and no miner has
		// reported a rate yet to predict the target by. A full run saw
		// 2.56 times; the bound there is each miner alone at the target
		// and one micro-batch past it.
		limit := 2 * cfg.Swarm.TargetBatchSize
		if e == 0 {
			limit = 3 * (cfg.Swarm.TargetBatchSize + cfg.Loop.MicroBatch)
		}
		if target := int64(cfg.Swarm.TargetBatchSize); sum < target/2 || sum > int64(limit) {
			t.Errorf("epoch %d: the swarm averaged %d samples, target %d", e, sum, target)
		}
	}
}

func checkSwarm(t *testing.T, events [][]EpochEvent, epochs int) {
	t.Helper()
	for i, evs := range events {
		if len(evs) != epochs {
			t.Fatalf("miner %d ran %d epochs, want %d", i, len(evs), epochs)
		}
		for e, ev := range evs {
			if ev.Contributors != len(events) || ev.Alone != "" {
				t.Errorf("miner %d epoch %d: %d contributors (alone: %q), want %d", i, e, ev.Contributors, ev.Alone, len(events))
			}
			// Exact: every miner of this process applies the same averaged
			// update, with the same code and one thread, to the same start.
			if ev.ParamHash != events[0][e].ParamHash {
				t.Errorf("epoch %d: miner %d holds parameters %s, miner 0 %s", e, i, ev.ParamHash, events[0][e].ParamHash)
			}
			if e > 0 && ev.StartHash != evs[e-1].ParamHash {
				// dtrain swarm --chaos traces where a state came from by this link.
				t.Errorf("miner %d: epoch %d started from parameters %s, epoch %d ended with %s", i, e, ev.StartHash, e-1, evs[e-1].ParamHash)
			}
		}
		first, last := evs[0].ValLoss, evs[len(evs)-1].ValLoss
		t.Logf("miner %d: held-out loss %.3f after epoch 0, %.3f after epoch %d; sync %v, %d bytes sent", i, first, last, len(evs)-1, evs[len(evs)-1].SyncTime, evs[len(evs)-1].BytesSent)
		if !(last < first) {
			t.Errorf("miner %d: held-out loss %v after the first epoch, %v after the last: not falling", i, first, last)
		}
	}
}

// TestLateJoinerCatchesUp: a miner that starts while two others are at
// epoch 2 or later loads their state from them (it never trains epoch 0),
// then averages with them: from its first epoch on it holds the same
// parameters as the others after every epoch.
func TestLateJoinerCatchesUp(t *testing.T) {
	cfg := tinyMiner("diloco")
	cfg.Swarm.MaxEpochs = 8
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := newHarness(t, ctx, cfg)
	third := make(chan struct{})
	var once sync.Once
	h.start(func(ev EpochEvent) {
		if ev.Epoch >= 1 {
			once.Do(func() { close(third) })
		}
	})
	h.start(nil)
	<-third
	late := h.start(nil)
	events := h.wait()
	joined := events[late]
	if len(joined) == 0 || joined[0].Epoch < 2 {
		t.Fatalf("late miner's first epoch: %+v, want it to start at epoch 2 or later from the others' state", joined)
	}
	byEpoch := map[uint64]string{}
	for _, ev := range events[0] {
		byEpoch[ev.Epoch] = ev.ParamHash
	}
	// A miner whose epoch is not averaged drops its update and trains the
	// same epoch again (an event each time), so an epoch is judged by its
	// last event: how it ended.
	ended := map[uint64]EpochEvent{}
	var order []uint64
	drops := 0
	for _, ev := range joined {
		if _, ok := ended[ev.Epoch]; !ok {
			order = append(order, ev.Epoch)
		}
		ended[ev.Epoch] = ev
		if ev.Dropped {
			drops++
		}
	}
	agreed, lastAgreed := 0, false
	for _, e := range order {
		ev := ended[e]
		// Exact, as in checkSwarm; the joiner's start is the others' bits.
		lastAgreed = ev.ParamHash == byEpoch[ev.Epoch] && ev.Contributors == 3
		if lastAgreed {
			agreed++
		} else {
			t.Logf("late miner epoch %d: %d contributors (alone %q, dropped %v), parameters %s, miner 0's %s",
				ev.Epoch, ev.Contributors, ev.Alone, ev.Dropped, ev.ParamHash, byEpoch[ev.Epoch])
		}
	}
	t.Logf("late miner joined at epoch %d, ran %d epochs (%d updates dropped and the epoch trained again), %d of them ended averaged with both others and in miner 0's parameters",
		joined[0].Epoch, len(order), drops, agreed)
	// Rounds have deadlines: on a loaded machine (the whole suite runs
	// packages in parallel on 2 cores) a round can leave a slow member out,
	// as it should. What must hold is that the joiner trains with the swarm
	// in most epochs and ends in step with it.
	if agreed < len(order)-3 || !lastAgreed {
		t.Errorf("late miner agreed with the swarm in %d of its %d epochs (last epoch agreed: %v)", agreed, len(order), lastAgreed)
	}
}

// TestKilledMinerRestarts: when a miner crashes mid-run the other two carry
// on (they average without it once matchmaking stops waiting), and the
// miner restarted on the same out_dir resumes from its checkpoint, loads
// the swarm's newer state from peers and averages with them again.
func TestKilledMinerRestarts(t *testing.T) {
	cfg := tinyMiner("diloco")
	cfg.Swarm.MaxEpochs = 40
	cfg.Swarm.MatchSeconds = 3
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := newHarness(t, ctx, cfg)
	h.start(nil)
	h.start(nil)
	dir := t.TempDir()
	crash := make(chan struct{})
	var once sync.Once
	_, kill := h.startIn(dir, func(ev EpochEvent) {
		if ev.Epoch >= 1 {
			once.Do(func() { close(crash) })
		}
	})
	<-crash
	kill()
	time.Sleep(time.Second) // the others go on without it
	restarted, _ := h.startIn(dir, nil)
	events := h.wait()
	survivors := events[0]
	without := 0
	for _, ev := range survivors {
		if ev.Contributors == 2 {
			without++
		}
	}
	back := events[restarted]
	if len(back) == 0 {
		t.Fatal("the restarted miner ran no epoch")
	}
	byEpoch := map[uint64]string{}
	for _, ev := range survivors {
		byEpoch[ev.Epoch] = ev.ParamHash
	}
	agreed := 0
	for _, ev := range back {
		// Exact, as in checkSwarm.
		if ev.ParamHash == byEpoch[ev.Epoch] && ev.Contributors == 3 {
			agreed++
		}
	}
	t.Logf("survivors ran %d epochs, %d of them without the crashed miner; it came back at epoch %d and agreed with them in %d of its %d epochs",
		len(survivors), without, back[0].Epoch, agreed, len(back))
	if len(survivors) != 40 || without == 0 {
		t.Errorf("survivors: %d epochs, %d without the crashed miner; want 40 and some", len(survivors), without)
	}
	if back[0].Epoch < 2 || agreed == 0 || agreed < len(back)-2 {
		t.Errorf("restarted miner started at epoch %d and agreed in %d of %d epochs", back[0].Epoch, agreed, len(back))
	}
}
