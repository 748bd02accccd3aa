package miner

import (
	"math"
	"testing"
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
		if err := m.apply(start, delta); err != nil {
			t.Fatal(err)
		}
		after := make([]float32, n)
		if err := m.model.Params(after); err != nil {
			t.Fatal(err)
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
