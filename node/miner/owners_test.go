package miner

import (
	"context"
	"testing"
	"time"
)

// runWithLyingOwner runs four miners, the last of which, from epoch 1 on,
// shifts the mean of its span before it sends it (CheatLyingOwner), and
// returns each one's epochs.
func runWithLyingOwner(t *testing.T, check bool) [][]EpochEvent {
	cfg := tinyMiner("diloco")
	cfg.Swarm.CheckOwners = check
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := newHarness(t, ctx, cfg)
	const n = 4
	miners := make([]*Miner, n)
	ctxs := make([]context.Context, n)
	for i := range n {
		_, miners[i], ctxs[i], _ = h.add(t.TempDir(), nil)
		miners[i].fullEpochs = true
	}
	liar, err := newCheater(Cheat{Kind: CheatLyingOwner, From: 1}, miners[n-1].log)
	if err != nil {
		t.Fatal(err)
	}
	miners[n-1].cheat = liar
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
	return h.wait()
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
