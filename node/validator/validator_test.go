package validator

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/data/datatest"
	"github.com/dtrain-dev/dtrain/node/miner"
	"github.com/dtrain-dev/dtrain/node/score"
	"github.com/dtrain-dev/dtrain/torch"
)

// tinyRun is node/miner's test swarm (a one-block model, 4 epochs) with
// 60 inner steps per epoch, so that an epoch's training outlasts the
// validator's following of the swarm's state, as it does in a real run.
func tinyRun() config.Miner {
	c := config.DefaultMiner()
	c.RunID = "test-validator"
	c.Model = config.Model{NLayer: 1, NHead: 2, NEmbd: 16, NPositions: 16, VocabSize: data.VocabSize}
	c.Data.SeqLen = 8
	c.Optim.LR, c.Optim.MinLR, c.Optim.WarmupSteps = 1e-2, 1e-3, 2
	c.Loop = config.Loop{MaxSteps: 240, BatchTokens: 32, MicroBatch: 4, EvalTokens: 64, KeepCheckpoints: 1, LogEvery: 1}
	c.Swarm.Mode, c.Swarm.InnerSteps, c.Swarm.MaxEpochs = "diloco", 60, 4
	c.Swarm.MatchSeconds, c.Swarm.RoundSeconds = 10, 30
	return c
}

// validatorFor is a validator config following run mc.
func validatorFor(mc config.Miner, dir string, trusted []string) config.Validator {
	v := config.DefaultValidator()
	v.RunID, v.OutDir = mc.RunID, dir
	m := mc.Model
	v.Model = config.RunModel{NLayer: m.NLayer, NHead: m.NHead, NEmbd: m.NEmbd, NPositions: m.NPositions, VocabSize: m.VocabSize}
	v.Swarm = config.ValidatorSwarmOf(mc.Swarm)
	v.Swarm.Validators = trusted
	v.Probe.EveryEpochs, v.Probe.Bytes, v.Probe.Seconds = 1, 64<<10, 5
	return v
}

func loopbackNode(t *testing.T, ctx context.Context, boot []string) *netx.Node {
	nd, err := netx.New(ctx, netx.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, DHTMode: netx.DHTServer, Bootstrap: boot})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Close() })
	return nd
}

// TestValidatorScoresHonestSwarm: three miners and a trusted validator on
// loopback. The validator joins the epochs' groups as aux; the miners
// still average all three updates every epoch, and their matchmaking
// closes as soon as the three are ready, long before the window's
// earliest deadline (match_seconds/2), so the validator holds nobody up.
// The validator writes weights for every miner each epoch, all positive.
// A second validator that the miners do not trust is refused: it shares
// no round, so it has no delivery evidence and gives every miner weight 0.
func TestValidatorScoresHonestSwarm(t *testing.T) {
	if err := torch.SetThreads(1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tr, val := datatest.Split(t, 18000, 2000, 8)
	vctx, stopValidators := context.WithCancel(ctx)
	defer stopValidators()

	trustedNode := loopbackNode(t, vctx, nil)
	boot := []string{fmt.Sprintf("%s/p2p/%s", trustedNode.Host().Addrs()[0], trustedNode.ID())}
	mc := tinyRun()
	mc.Swarm.Validators = []string{trustedNode.ID().String()}

	var mu sync.Mutex
	weights := map[string][]score.Weights{}
	var vwg sync.WaitGroup
	dirs := map[string]string{}
	startValidator := func(name string, nd *netx.Node, trusted []string) {
		dir := t.TempDir()
		dirs[name] = dir
		log := zerolog.New(zerolog.NewTestWriter(t)).With().Str("validator", name).Timestamp().Logger().Level(zerolog.DebugLevel)
		v, err := New(vctx, Options{Config: validatorFor(mc, dir, trusted), Node: nd, Log: log,
			Observer: func(w score.Weights) {
				mu.Lock()
				weights[name] = append(weights[name], w)
				mu.Unlock()
			}})
		if err != nil {
			t.Fatal(err)
		}
		vwg.Add(1)
		go func() {
			defer vwg.Done()
			defer v.Close()
			if err := v.Run(vctx); err != nil {
				t.Errorf("validator %s: %v", name, err)
			}
		}()
	}
	startValidator("trusted", trustedNode, mc.Swarm.Validators)
	rogueNode := loopbackNode(t, vctx, boot)
	startValidator("rogue", rogueNode, []string{rogueNode.ID().String()})

	events := make([][]miner.EpochEvent, 3)
	ids := runMiners(t, ctx, mc, boot, tr, val, zerolog.InfoLevel, func(i int, ev miner.EpochEvent) {
		mu.Lock()
		events[i] = append(events[i], ev)
		mu.Unlock()
	})
	// The last epoch closes once the validator sees the miners' final state.
	waitUntil(40*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(weights["trusted"]) >= 4
	})
	stopValidators()
	vwg.Wait()

	half := time.Duration(mc.Swarm.MatchSeconds * float64(time.Second) / 2)
	joined := map[int]bool{}
	for i, evs := range events {
		if len(evs) != 4 {
			t.Fatalf("miner %d ran %d epochs, want 4", i, len(evs))
		}
		for e, ev := range evs {
			t.Logf("miner %d epoch %d: group %d, %d contributors, matchmaking %v", i, e, ev.Group, ev.Contributors, ev.SyncTime-ev.RoundTime)
			if ev.Contributors != 3 || ev.Dropped {
				t.Errorf("miner %d epoch %d: %d contributors, dropped %v; want all 3 averaged", i, e, ev.Contributors, ev.Dropped)
			}
			if ev.Group == 4 {
				joined[e] = true
			}
			if ev.SyncTime-ev.RoundTime >= half {
				t.Errorf("miner %d epoch %d: matchmaking took %v, want under %v: it waited for a validator", i, e, ev.SyncTime-ev.RoundTime, half)
			}
		}
	}
	// A validator that announces after the last miner of a window is left
	// out of that round by design (it never holds miners up); with epochs
	// of seconds it announces well before.
	if len(joined) < 3 {
		t.Errorf("the validator joined the rounds of epochs %v, want at least 3 of the 4", joined)
	}
	ws := weights["trusted"]
	if len(ws) < 4 {
		t.Fatalf("trusted validator wrote weights for %d epochs, want 4", len(ws))
	}
	first := uint64(4)
	for e := range joined {
		first = min(first, uint64(e))
	}
	for _, w := range ws {
		got := map[string]float64{}
		for _, m := range w.Miners {
			got[m.Miner] = m.Weight
			b, _ := json.Marshal(m)
			t.Logf("trusted validator, epoch %d: %s", w.Epoch, b)
		}
		if len(got) != len(ids) {
			t.Errorf("epoch %d: weights for %d peers, want the %d miners", w.Epoch, len(got), len(ids))
		}
		for _, id := range ids {
			// A miner needs a round shared with the validator to score.
			if w.Epoch >= first && !(got[id] > 0) {
				t.Errorf("epoch %d: miner %s has weight %v, want > 0", w.Epoch, id, got[id])
			}
		}
	}
	lines := countLines(t, filepath.Join(dirs["trusted"], "weights.jsonl"))
	if lines != len(ws) {
		t.Errorf("weights.jsonl holds %d lines, the validator closed %d epochs", lines, len(ws))
	}
	if len(weights["rogue"]) == 0 {
		t.Error("the untrusted validator closed no epoch")
	}
	for _, w := range weights["rogue"] {
		for _, m := range w.Miners {
			if m.Weight != 0 || m.Delivery != nil {
				t.Errorf("untrusted validator, epoch %d: miner %s weight %v, delivery %v: it shared a round", w.Epoch, m.Miner, m.Weight, m.Delivery)
			}
		}
	}
}

func countLines(t *testing.T, path string) int {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		n++
	}
	return n
}

// runMiners runs 3 miners of run mc on loopback, bootstrapping from boot,
// until they stop at its max_steps, and returns their peer ids; observe
// (nil: none) sees each miner's epochs.
func runMiners(t *testing.T, ctx context.Context, mc config.Miner, boot []string, tr, val *data.Dataset,
	level zerolog.Level, observe func(i int, ev miner.EpochEvent)) []string {
	t.Helper()
	var wg sync.WaitGroup
	ids := make([]string, 3)
	for i := range ids {
		nd := loopbackNode(t, ctx, boot)
		ids[i] = nd.ID().String()
		c := mc
		c.OutDir = t.TempDir()
		log := zerolog.New(zerolog.NewTestWriter(t)).With().Int("miner", i).Timestamp().Logger().Level(level)
		o := miner.Options{Config: c, Node: nd, Train: tr, Val: val, Log: log}
		if observe != nil {
			o.Observer = func(ev miner.EpochEvent) { observe(i, ev) }
		}
		m, err := miner.New(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Run(ctx); err != nil {
				t.Errorf("miner %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	return ids
}

// waitUntil polls done every 100 ms until it holds or d has passed.
func waitUntil(d time.Duration, done func() bool) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline) && !done(); {
		time.Sleep(100 * time.Millisecond)
	}
}
