package validator

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/score"
	"github.com/dtrain-dev/dtrain/node/state"
	"github.com/dtrain-dev/dtrain/node/train"
	"github.com/dtrain-dev/dtrain/torch"
)

// markovData writes n tokens of a sparse random first-order Markov chain
// over vocab tokens (4 successors per token, 30% of tokens uniform noise)
// as a training shard and opens it in windows of seq tokens: a model
// learns the chain, which holds on every window, while each window's noise
// is fit only by training on it, which is what the lane test sees (the
// corpus of node/verify's simulation).
func markovData(t *testing.T, n, vocab, seq int, seed uint64) *data.Dataset {
	t.Helper()
	r := seed
	next := func() uint64 { r += 0x9e3779b97f4a7c15; return data.SplitMix64(r) }
	succ := make([][4]int32, vocab)
	for i := range succ {
		for j := range succ[i] {
			succ[i][j] = int32(next() % uint64(vocab))
		}
	}
	toks := make([]int32, n)
	tok := int32(0)
	for i := range toks {
		toks[i] = tok
		u := next() % 16 // successor j with probability 8/16, 4/16, 2/16, 2/16
		j := 0
		switch {
		case u >= 14:
			j = 3
		case u >= 12:
			j = 2
		case u >= 8:
			j = 1
		}
		tok = succ[tok][j]
		if next()%10 < 3 {
			tok = int32(next() % uint64(vocab))
		}
	}
	dir := t.TempDir()
	if err := data.WriteShard(filepath.Join(dir, "train_000000.bin"), toks); err != nil {
		t.Fatal(err)
	}
	ds, err := data.OpenDataset(dir, "train", seq)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	return ds
}

// workRun is a run small enough to train a few miners for a few epochs in
// a test, with the lane test's power of node/verify's simulation: a
// one-block model of width 32 over 256 tokens, 40 inner steps of 16
// windows of 32 tokens.
func workRun() config.Miner {
	c := config.DefaultMiner()
	c.RunID = "test-work"
	c.Model = config.Model{NLayer: 1, NHead: 2, NEmbd: 32, NPositions: 32, VocabSize: 256, Dropout: 0.1}
	c.Data.SeqLen = 32
	c.Optim.LR, c.Optim.MinLR, c.Optim.WarmupSteps = 3e-3, 3e-4, 8
	c.Loop = config.Loop{MaxSteps: 800, BatchTokens: 512, MicroBatch: 16, EvalTokens: 64, KeepCheckpoints: 1, LogEvery: 1}
	c.Swarm.Mode, c.Swarm.InnerSteps = "diloco", 40
	return c
}

// testMiner trains as node/miner does: its micro-batches k = 0, 1, … of
// its lane of the epoch, each with the lane's dropout seed, gradients
// accumulated and clipped, AdamW at the schedule's rate from the state's
// step; its optimizer carries over between epochs.
type testMiner struct {
	model *torch.Model
	opt   *torch.AdamW
}

func newTestMiner(t *testing.T, run config.Miner) *testMiner {
	m, err := train.NewModel(run.Train, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	o, err := torch.NewAdamW(m, train.AdamWConfig(run.Optim))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close(); m.Close() })
	return &testMiner{model: m, opt: o}
}

// train takes steps inner steps from start at the run's step on lane and
// returns the pseudo-gradient and the samples.
func (m *testMiner) train(t *testing.T, run config.Miner, rules workRules, start []float32, step int, lane data.Lane, steps int) ([]float32, int64) {
	if err := m.model.SetParams(start); err != nil {
		t.Fatal(err)
	}
	batch, accum := rules.batches(context.Background(), lane), max(1, run.AccumSteps())
	k := 0
	for s := 0; s < steps; s++ {
		if err := m.model.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		for range accum {
			b, err := batch(k)
			if err == nil {
				err = m.model.SeedDropout(lane.DropoutSeed(int64(k)))
			}
			if err == nil {
				_, _, err = m.model.TrainStep(b, 1/float64(accum))
			}
			if err != nil {
				t.Fatal(err)
			}
			k++
		}
		if _, err := m.model.ClipGradNorm(run.Optim.GradClip); err != nil {
			t.Fatal(err)
		}
		if err := m.opt.Step(rules.sched.At(step + s)); err != nil {
			t.Fatal(err)
		}
	}
	p := make([]float32, len(start))
	if err := m.model.Params(p); err != nil {
		t.Fatal(err)
	}
	for i := range p {
		p[i] = start[i] - p[i]
	}
	return p, int64(k * run.Loop.MicroBatch)
}

// fixedStates is a StateSource of states a test set.
type fixedStates map[uint64]EpochState

func (f fixedStates) EpochState(_ context.Context, e uint64) (EpochState, error) {
	st, ok := f[e]
	if !ok {
		return EpochState{}, ErrNoState
	}
	return st, nil
}

// TestWorkCheckCatchesAnotherLane: four honest miners and one that trains
// as hard but on windows other than its lane, averaged by claimed samples
// with DiLoCo's outer step for three epochs, each audited by a WorkCheck
// that knows only the run's config, its data and the epoch's state. The
// cheater is caught by the lane test within the three epochs; no honest
// miner is ever a Cheat. NormCheck, the fallback, cannot tell the cheater
// from the others (its update has an honest norm): only the work check
// catches it. The check's compute is counted against the miners'.
func TestWorkCheckCatchesAnotherLane(t *testing.T) {
	if err := torch.SetThreads(1); err != nil {
		t.Fatal(err)
	}
	run := workRun()
	ds := markovData(t, 1<<20, run.Model.VocabSize, run.Data.SeqLen, 7)
	states := fixedStates{}
	w, err := NewWorkCheck(run, ds, states, WorkOptions{Device: torch.CPU, Seed: 11, Log: zerolog.New(zerolog.NewTestWriter(t)),
		Val: ds, ValWindows: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	ids := []string{"honest-0", "honest-1", "honest-2", "honest-3", "cheat"}
	steps := []int{40, 40, 40, 30, 40}
	miners := make([]*testMiner, len(ids))
	for i := range miners {
		miners[i] = newTestMiner(t, run)
	}
	theta := make([]float32, miners[0].model.NumParams())
	if err := miners[0].model.Params(theta); err != nil {
		t.Fatal(err)
	}
	momentum := make([]float32, len(theta))
	outer := train.OuterNesterov{LR: run.Swarm.OuterLR, Momentum: run.Swarm.OuterMomentum}
	var prevMean []float32
	caught := -1
	for e := uint64(0); e < 3; e++ {
		step := int(e) * run.Swarm.InnerSteps
		states[e] = EpochState{Start: theta, PrevMean: prevMean, Step: step}
		audits := make([]Audit, len(ids))
		for i, id := range ids {
			lane := w.rules.order.Lane(e, id)
			if id == "cheat" {
				lane = w.rules.order.Lane(e, id+"/elsewhere")
			}
			vec, samples := miners[i].train(t, run, w.rules, theta, step, lane, steps[i])
			audits[i] = Audit{Epoch: e, Miner: id, Weight: float64(samples), Update: vec}
		}
		for _, vd := range (NormCheck{}).Verify(context.Background(), audits) {
			if vd.Kind == score.Cheat {
				t.Errorf("epoch %d: NormCheck calls %s a cheat (%s)", e, vd.Miner, vd.Reason)
			}
		}
		verdicts := w.Verify(context.Background(), audits)
		if len(verdicts) != len(ids) {
			t.Fatalf("epoch %d: %d verdicts for %d audits", e, len(verdicts), len(ids))
		}
		// The held-out loss of the swarm's state after the epoch before,
		// as the miners measure it (train.HeldOutLoss), by a float32 model
		// as the validator's: the same computation in the same process,
		// so the same bits.
		held := w.TakeHeldOut()
		if e == 0 && len(held) != 0 {
			t.Errorf("epoch 0: held-out loss %v of the initial state", held)
		}
		if e > 0 {
			md := run.Model
			refModel, err := torch.NewModel(torch.NewConfig(md.NLayer, md.NHead, md.NEmbd, md.NPositions, md.VocabSize), torch.CPU, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := refModel.SetParams(theta); err != nil {
				t.Fatal(err)
			}
			ref, _, err := train.HeldOutLoss(refModel, ds, 8, run.Loop.MicroBatch)
			refModel.Close()
			if err != nil {
				t.Fatal(err)
			}
			if len(held) != 1 || held[0].Epoch != e-1 || held[0].Loss != ref {
				t.Errorf("epoch %d: held-out %+v, want epoch %d's %v", e, held, e-1, ref)
			}
		}
		for _, vd := range verdicts {
			t.Logf("epoch %d: %s %v %q", e, vd.Miner, vd.Kind, vd.Reason)
			switch {
			case vd.Miner == "cheat" && vd.Kind == score.Cheat && caught < 0:
				caught = int(e)
			case vd.Miner != "cheat" && vd.Kind == score.Cheat:
				t.Errorf("epoch %d: honest %s is a cheat: %s", e, vd.Miner, vd.Reason)
			}
		}
		mean := make([]float32, len(theta))
		var total float64
		for _, a := range audits {
			total += a.Weight
		}
		for _, a := range audits {
			for j, x := range a.Update {
				mean[j] += float32(a.Weight/total) * x
			}
		}
		theta = append([]float32(nil), theta...)
		if err := outer.Step(theta, mean, momentum); err != nil {
			t.Fatal(err)
		}
		prevMean = mean
	}
	if caught < 0 {
		t.Error("the miner trained on another lane was not caught in 3 epochs")
	}
	c := w.Cost()
	// Every miner is audited every epoch: 128 windows each and 32 shared
	// against 3·560 windows or more each (node/verify, Cost).
	t.Logf("work checks: %d epochs, %d validator tokens, %d miner tokens, ratio %.3f, %.2fs", c.Epochs, c.Validator, c.Miners, c.Ratio(), c.Seconds)
	if c.Epochs != 3 || c.PrevMeans != 2 || !(c.Ratio() > 0) || c.Ratio() > 0.5 {
		t.Errorf("cost %+v: want 3 epochs checked and a ratio in (0, 0.5]", c)
	}
}

// TestWorkCheckFallsBack: outside its cadence, or without the epoch's
// state, a WorkCheck gives NormCheck's verdicts, so the norm checks still
// catch what they catch (here a zero update).
func TestWorkCheckFallsBack(t *testing.T) {
	run := workRun()
	ds := markovData(t, 1<<14, run.Model.VocabSize, run.Data.SeqLen, 1)
	w, err := NewWorkCheck(run, ds, fixedStates{}, WorkOptions{Every: 2, Device: torch.CPU, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	n := int(torch.NumParams(torch.NewConfig(1, 2, 32, 32, 256)))
	for _, e := range []uint64{1, 2} { // 1: not a multiple of Every; 2: no state
		audits := []Audit{{Epoch: e, Miner: "a", Weight: 16, Update: make([]float32, n)}}
		vs := w.Verify(context.Background(), audits)
		if len(vs) != 1 || vs[0].Kind != score.Cheat || vs[0].Reason != "zero update" {
			t.Errorf("epoch %d: %+v, want NormCheck's zero-update cheat", e, vs)
		}
	}
	if c := w.Cost(); c.Epochs != 0 {
		t.Errorf("%d epochs counted as checked by node/verify", c.Epochs)
	}
	if _, err := NewWorkCheck(func() config.Miner { r := run; r.Swarm.Mode = "gradients"; return r }(), ds, fixedStates{}, WorkOptions{}); err == nil {
		t.Error("a work check built for a gradients run")
	}
}

// TestClaimedSamples: a member's weight becomes verify's sample count only
// when it is a whole number in range; anything else is 0, which verify
// refuses as impossible.
func TestClaimedSamples(t *testing.T) {
	for _, c := range []struct {
		w    float64
		want int64
	}{{16, 16}, {1, 1}, {0, 0}, {-3, 0}, {2.5, 0}, {math.NaN(), 0}, {math.Inf(1), 0}, {1 << 60, 0}} {
		if got := claimedSamples(c.w); got != c.want {
			t.Errorf("claimedSamples(%v) = %d, want %d", c.w, got, c.want)
		}
	}
}

// TestPrevMeanFromMomenta: the previous average is recovered from two
// consecutive states' outer momenta, and refused for states that are not
// one outer step apart.
func TestPrevMeanFromMomenta(t *testing.T) {
	outer := train.OuterNesterov{LR: 0.7, Momentum: 0.9}
	h := &holder{outer: outer}
	a := state.Snapshot{Step: 10, Params: []float32{0.5, -0.25, 1, 0.01}, Momentum: []float32{1e-3, -2e-3, 0, 5e-4}}
	delta := []float32{2e-3, 1e-3, -4e-3, 1e-5}
	b := state.Snapshot{Step: 20, Params: append([]float32(nil), a.Params...), Momentum: append([]float32(nil), a.Momentum...)}
	if err := outer.Step(b.Params, delta, b.Momentum); err != nil {
		t.Fatal(err)
	}
	got := h.prevMean(a, b)
	if got == nil {
		t.Fatal("no previous average for consecutive states")
	}
	for j := range delta {
		// One rounding of the momentum apart (float32, values ≤ 5e-3).
		if d := math.Abs(float64(got[j] - delta[j])); d > 1e-9 {
			t.Errorf("Δ[%d] = %v, want %v", j, got[j], delta[j])
		}
	}
	other := b
	other.Params = append([]float32(nil), b.Params...)
	other.Params[2] += 1e-3 // another lineage's parameters
	if h.prevMean(a, other) != nil {
		t.Error("a previous average for states that are not one outer step apart")
	}
}
