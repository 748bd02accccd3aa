package miner

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/torch"
)

func tinyMiner(mode string) config.Miner {
	c := config.DefaultMiner()
	c.RunID = "test-" + mode
	c.Model = config.Model{NLayer: 1, NHead: 2, NEmbd: 16, NPositions: 16, VocabSize: data.VocabSize}
	c.Data.SeqLen = 8
	c.Optim.LR, c.Optim.MinLR, c.Optim.WarmupSteps = 1e-2, 1e-3, 2
	c.Loop = config.Loop{MaxSteps: 12, BatchTokens: 32, MicroBatch: 4, EvalTokens: 64, KeepCheckpoints: 1, LogEvery: 1}
	c.Swarm.Mode, c.Swarm.InnerSteps = mode, 3
	c.Swarm.MatchSeconds, c.Swarm.RoundSeconds = 10, 30
	if mode == "gradients" {
		c.Loop.MaxSteps = 5
	}
	return c
}

// tinyData is a repetitive token stream, split into train and val shards.
func tinyData(t *testing.T) (train, val *data.Dataset) {
	t.Helper()
	dir := t.TempDir()
	toks := make([]int32, 20000)
	for i := range toks {
		toks[i] = int32((i*7)%97 + (i/13)%5)
	}
	if err := data.WriteShard(filepath.Join(dir, "train_000000.bin"), toks[:18000]); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteShard(filepath.Join(dir, "val_000000.bin"), toks[18000:]); err != nil {
		t.Fatal(err)
	}
	var err error
	if train, err = data.OpenDataset(dir, "train", 8); err != nil {
		t.Fatal(err)
	}
	if val, err = data.OpenDataset(dir, "val", 8); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { train.Close(); val.Close() })
	return train, val
}

// runSwarm runs n miners of cfg in this process over loopback QUIC, the
// first one the others' bootstrap peer, and returns each one's epochs.
func runSwarm(t *testing.T, cfg config.Miner, n int) [][]EpochEvent {
	t.Helper()
	if err := torch.SetThreads(1); err != nil {
		t.Fatal(err)
	}
	tr, val := tinyData(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var boot []string
	miners := make([]*Miner, n)
	for i := range n {
		nc := netx.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, DHTMode: netx.DHTServer, Bootstrap: boot}
		nd, err := netx.New(ctx, nc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		if i == 0 {
			boot = []string{fmt.Sprintf("%s/p2p/%s", nd.Host().Addrs()[0], nd.ID())}
		}
		c := cfg
		c.OutDir = t.TempDir()
		m, err := New(ctx, Options{Config: c, Node: nd, Train: tr, Val: val, Log: zerolog.New(zerolog.NewTestWriter(t)).With().Int("miner", i).Timestamp().Logger().Level(zerolog.InfoLevel)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		miners[i] = m
	}
	events := make([][]EpochEvent, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, m := range miners {
		wg.Add(1)
		m.opts.Observer = func(ev EpochEvent) { events[i] = append(events[i], ev) }
		go func() {
			defer wg.Done()
			errs[i] = m.Run(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("miner %d: %v", i, err)
		}
	}
	return events
}

// TestSwarmDiLoCo: three miners average every epoch in one group of three,
// hold the same parameters after every outer step (they start from the
// same seed and apply the same averaged pseudo-gradient), and the held-out
// loss falls.
func TestSwarmDiLoCo(t *testing.T) {
	checkSwarm(t, runSwarm(t, tinyMiner("diloco"), 3), 4)
}

// TestSwarmGradients: the same for gradients mode, one averaged AdamW step
// per epoch.
func TestSwarmGradients(t *testing.T) {
	checkSwarm(t, runSwarm(t, tinyMiner("gradients"), 3), 5)
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
			if ev.ParamHash != events[0][e].ParamHash {
				t.Errorf("epoch %d: miner %d holds parameters %s, miner 0 %s", e, i, ev.ParamHash, events[0][e].ParamHash)
			}
		}
		first, last := evs[0].ValLoss, evs[len(evs)-1].ValLoss
		t.Logf("miner %d: held-out loss %.3f after epoch 0, %.3f after epoch %d; sync %v, %d bytes sent", i, first, last, len(evs)-1, evs[len(evs)-1].SyncTime, evs[len(evs)-1].BytesSent)
		if !(last < first) {
			t.Errorf("miner %d: held-out loss %v after the first epoch, %v after the last: not falling", i, first, last)
		}
	}
}
