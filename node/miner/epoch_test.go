package miner

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/dtrain-dev/dtrain/node/train"
)

// TestOuterStepKeepsMomentum: two diloco epochs that average the same
// pseudo-gradient Δ move the parameters by η(1+μ)Δ and then by
// η(1+μ+μ²)Δ (the outer momentum is Δ after the first, μΔ + Δ after the
// second): the miner applies the Nesterov step and carries its momentum
// from one epoch to the next. Plain averaging, θ − ηΔ, moves them by ηΔ
// both times.
func TestOuterStepKeepsMomentum(t *testing.T) {
	m := bareMiner(t, "diloco", 1)
	lr, mu := m.cfg.Swarm.OuterLR, m.cfg.Swarm.OuterMomentum
	n := m.model.NumParams()
	delta := make([]float32, n)
	for i := range delta {
		delta[i] = 0.01 * float32(i%7-3)
	}
	for epoch, factor := range []float64{1 + mu, 1 + mu + mu*mu} {
		before := make([]float32, n)
		if err := m.model.Params(before); err != nil {
			t.Fatal(err)
		}
		start := append([]float32(nil), before...)
		next, err := m.apply(start, delta)
		if err != nil {
			t.Fatal(err)
		}
		after := make([]float32, n)
		if err := m.model.Params(after); err != nil {
			t.Fatal(err)
		}
		// Exact: the model holds the very floats apply computed.
		if !slices.Equal(next, after) {
			t.Fatalf("epoch %d: apply returned other parameters than the model holds", epoch)
		}
		for i := range after {
			want := float64(before[i]) - lr*factor*float64(delta[i])
			if math.Abs(float64(after[i])-want) > 1e-5 {
				t.Fatalf("epoch %d, parameter %d: %v -> %v, want %v (η = %v, μ = %v, Δ = %v)",
					epoch, i, before[i], after[i], want, lr, mu, delta[i])
			}
		}
	}
}

// TestApplyReturnsTheModelsParameters: in gradients mode the step runs on
// the model, and apply hands back exactly what the model then holds: the
// copy the miner offers, checkpoints and starts its next epoch from.
func TestApplyReturnsTheModelsParameters(t *testing.T) {
	m := bareMiner(t, "gradients", 1)
	m.sched = train.Schedule{LR: 1e-2, MinLR: 1e-3, Total: 5}
	n := m.model.NumParams()
	start := make([]float32, n)
	if err := m.model.Params(start); err != nil {
		t.Fatal(err)
	}
	grad := make([]float32, n)
	for i := range grad {
		grad[i] = 0.01 * float32(i%5-2)
	}
	next, err := m.apply(start, grad)
	if err != nil {
		t.Fatal(err)
	}
	held := make([]float32, n)
	if err := m.model.Params(held); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(next, held) || slices.Equal(next, start) || m.step != 1 {
		t.Fatalf("apply returned parameters equal to the model's: %v, to the start: %v; step %d",
			slices.Equal(next, held), slices.Equal(next, start), m.step)
	}
}

// TestApplyRefusesAnOverflowingAverage is issue 17's finding: a group
// member claiming a huge weight and sending values near float32's largest
// makes the group's mean finite but the outer step overflow to ±Inf, and
// SetParams' failure ended Miner.Run. apply now refuses such a mean with
// errBadAverage (the driver drops the epoch) and leaves the model, the
// momentum and the step as they were; in gradients mode it refuses a mean
// whose norm is past float32's range, which libtorch's clipping cannot
// take.
func TestApplyRefusesAnOverflowingAverage(t *testing.T) {
	for _, mode := range []string{"diloco", "gradients"} {
		m := bareMiner(t, mode, 1)
		n := m.model.NumParams()
		start := make([]float32, n)
		if err := m.model.Params(start); err != nil {
			t.Fatal(err)
		}
		if m.momentum != nil {
			m.momentum[0] = 0.5
		}
		momentum, step := slices.Clone(m.momentum), m.step
		mean := make([]float32, n)
		for i := range mean {
			mean[i] = 3e38 * float32(1-2*(i%2))
		}
		if _, err := m.apply(start, mean); !errors.Is(err, errBadAverage) {
			t.Fatalf("%s: apply of a mean near float32's largest: %v, want errBadAverage", mode, err)
		}
		held := make([]float32, n)
		if err := m.model.Params(held); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(held, start) || !slices.Equal(m.momentum, momentum) || m.step != step {
			t.Fatalf("%s: the refused mean changed the model, the momentum or the step", mode)
		}
		mean[3] = float32(math.Inf(1))
		if _, err := m.apply(start, mean); !errors.Is(err, errBadAverage) {
			t.Fatalf("%s: apply of a mean holding +Inf: %v, want errBadAverage", mode, err)
		}
	}
}

// A group mean far longer than the miner's own update is refused: honest
// averaging never lengthens updates tenfold, so members sent garbage, and
// the miner drops the epoch loudly rather than learn it (issue 17). A
// miner that trained a fraction of the epoch allows a mean that much
// longer.
func TestCheckMeanRefusesGarbage(t *testing.T) {
	m := bareMiner(t, "diloco", 1)
	full := m.cfg.MaxEpochSamples()
	own := []float32{1, -2, 3, 0.5}
	mean := []float32{2, -1, 2.5, 1} // about as long
	if err := m.checkMean(mean, own, full); err != nil {
		t.Fatalf("an honest-looking mean refused: %v", err)
	}
	huge := []float32{100, -200, 300, 50}
	if err := m.checkMean(huge, own, full); !errors.Is(err, errBadAverage) {
		t.Fatalf("a mean 100× the own update: %v, want errBadAverage", err)
	}
	// Having trained a twentieth of the epoch, the miner's own update is
	// about that much shorter than a full one: 100× is within 10×20.
	if err := m.checkMean(huge, own, max(1, full/20)); err != nil {
		t.Fatalf("a short-trained miner refused a mean 100× its update: %v", err)
	}
}
