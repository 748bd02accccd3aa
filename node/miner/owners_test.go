package miner

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/config"
)

// runWithLyingOwner runs four miners, the last of which, from epoch 1 on,
// shifts the mean of its span before it sends it (CheatLyingOwner), and
// returns each one's epochs.
func runWithLyingOwner(t *testing.T, check bool) [][]EpochEvent {
	cfg := tinyMiner("diloco")
	cfg.Swarm.CheckOwners = check
	events, _ := runFour(t, cfg, &Cheat{Kind: CheatLyingOwner, From: 1})
	return events
}

// runFour runs four miners of cfg, the last playing cheat if not nil, and
// returns each one's epochs and rounds.
func runFour(t *testing.T, cfg config.Miner, cheat *Cheat) ([][]EpochEvent, [][]RoundEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := newHarness(t, ctx, cfg)
	const n = 4
	miners := make([]*Miner, n)
	ctxs := make([]context.Context, n)
	var mu sync.Mutex
	rounds := make([][]RoundEvent, n)
	for i := range n {
		_, miners[i], ctxs[i], _ = h.add(t.TempDir(), nil)
		miners[i].fullEpochs = true
		miners[i].opts.Events = func(ev Event) {
			if r, ok := ev.(RoundEvent); ok {
				mu.Lock()
				rounds[i] = append(rounds[i], r)
				mu.Unlock()
			}
		}
	}
	if cheat != nil {
		c, err := newCheater(*cheat, miners[n-1].log)
		if err != nil {
			t.Fatal(err)
		}
		miners[n-1].cheat = c
	}
	for _, m := range miners {
		for len(m.gossip.Peers()) < n-1 {
			select {
			case <-ctx.Done():
				t.Fatal("the miners' gossip never connected")
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	for i, m := range miners {
		h.run(i, m, ctxs[i])
	}
	return h.wait(), rounds
}

// With groups of at most two, four miners average in two groups and then
// in the round of the groups' delegates: that round is committed too (each
// delegate commits its group's mean), the delegates check its owners as
// members check a group's, and every epoch is applied as one state. (A
// delegate's announcement carries its group's samples: the members once
// took it for one over the epoch's bound and stopped waiting for their
// delegate, so groups formed short and epochs forked.)
func TestDelegatesRoundIsChecked(t *testing.T) {
	cfg := tinyMiner("diloco")
	cfg.Swarm.MaxGroup = 2
	events, rounds := runFour(t, cfg, nil)
	delegates := map[uint64]map[int]bool{} // epoch → miners whose delegates' round succeeded
	for i, rs := range rounds {
		for _, r := range rs {
			t.Logf("miner %d: epoch %d stage %d, %d contributors, %d spans checked, %d unchecked, %v", i, r.Epoch, r.Stage, r.Contributors, r.Checked, r.Unchecked, r.Err)
			if r.Stage != 2 || r.Err != "" {
				continue
			}
			if r.Checked == 0 {
				t.Errorf("miner %d: the delegates' round of epoch %d checked no owner (%d unchecked)", i, r.Epoch, r.Unchecked)
			}
			if delegates[r.Epoch] == nil {
				delegates[r.Epoch] = map[int]bool{}
			}
			delegates[r.Epoch][i] = true
		}
	}
	if len(delegates) == 0 {
		t.Fatal("no delegates' round succeeded")
	}
	applied := map[uint64]map[string]int{}
	for _, evs := range events {
		for _, ev := range evs {
			if ev.Dropped || ev.Contributors < 2 {
				continue
			}
			if applied[ev.Epoch] == nil {
				applied[ev.Epoch] = map[string]int{}
			}
			applied[ev.Epoch][ev.ParamHash]++
		}
	}
	for e, hs := range applied {
		if len(hs) != 1 {
			t.Errorf("epoch %d applied as %d states: %v", e, len(hs), hs)
		}
	}
	if len(applied) < 4 {
		t.Errorf("%d epochs applied, want 4", len(applied))
	}
}

// Issue 17: an owner that sends a shifted mean of its span is caught by
// the others' owner checks in the round it lies in: no honest miner
// applies a mean it reduced from then on, every honest miner stays up, and
// the honest ones go on averaging together, holding the same parameters.
// Without the checks the honest miners take the shifted mean.
func TestLyingOwnerIsCaught(t *testing.T) {
	events := runWithLyingOwner(t, true)
	averagedWithout := 0
	for i, evs := range events[:3] {
		for _, ev := range evs {
			t.Logf("miner %d epoch %d: %d contributors, params %s", i, ev.Epoch, ev.Contributors, ev.ParamHash)
			if ev.Epoch >= 1 && ev.Contributors == 4 {
				t.Errorf("miner %d applied a mean of epoch %d over all 4 miners, the lying owner's span included", i, ev.Epoch)
			}
			if ev.Epoch >= 1 && ev.Contributors == 3 {
				averagedWithout++
			}
		}
	}
	if averagedWithout == 0 {
		t.Error("the honest miners never averaged without the liar")
	}
	for e := range events[0] {
		for i := 1; i < 3; i++ {
			if e < len(events[i]) && events[i][e].Epoch == events[0][e].Epoch && events[i][e].ParamHash != events[0][e].ParamHash {
				t.Errorf("epoch %d: honest miners %d and 0 hold different parameters", events[0][e].Epoch, i)
			}
		}
	}

	events = runWithLyingOwner(t, false)
	took := 0
	for _, evs := range events[:3] {
		for _, ev := range evs {
			if ev.Epoch >= 1 && ev.Contributors == 4 {
				took++
			}
		}
	}
	if took == 0 {
		t.Error("without owner checks no honest miner took the liar's mean: the cheat tests nothing")
	}
	t.Logf("without owner checks: %d honest epochs applied a mean with the liar's span", took)
}
