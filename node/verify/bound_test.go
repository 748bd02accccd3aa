package verify

import (
	"math"
	"testing"

	"github.com/dtrain-dev/dtrain/torch"
)

func TestAdamRatioBound(t *testing.T) {
	// As t grows the bound tends to (1−β1)/√((1−β2)(1−β1²/β2)), 1.165 for
	// GPT-2's betas, and it is 1 at t = 1 (the first step is ±lr).
	limit := func(b1, b2 float64) float64 { return (1 - b1) / math.Sqrt((1-b2)*(1-b1*b1/b2)) }
	for _, c := range []struct{ b1, b2 float64 }{{0.9, 0.95}, {0.9, 0.999}, {0.5, 0.9}, {0, 0.5}} {
		got := adamRatioBound(c.b1, c.b2)
		if got < 1 || got < limit(c.b1, c.b2)*(1-1e-9) || got > limit(c.b1, c.b2)*1.001+1e-9 && got > 1 {
			t.Errorf("β = (%v, %v): bound %v, limit %v", c.b1, c.b2, got, limit(c.b1, c.b2))
		}
	}
	if b := adamRatioBound(0.9, 0.95); math.Abs(b-1.1646) > 1e-3 {
		t.Errorf("GPT-2's betas: bound %v, want 1.165", b)
	}
	// β1² ≥ β2: the moments can be made to grow without bound.
	if b := adamRatioBound(0.99, 0.9); !math.IsInf(b, 1) {
		t.Errorf("β = (0.99, 0.9): bound %v, want +Inf", b)
	}
}

// TestBoundHoldsForAdamW drives libtorch's AdamW with chosen gradients,
// after a warm-up whose moments it carries (as a miner carries them from
// one epoch into the next), and checks that no epoch's pseudo-gradient
// crosses the bound, that gradients of one sign come close to it (so an
// honest update scaled ×5 is caught), and that ×2 of that crosses it.
func TestBoundHoldsForAdamW(t *testing.T) {
	if err := torch.SetThreads(1); err != nil {
		t.Fatal(err)
	}
	cfg := torch.NewConfig(1, 2, 16, 8, 64)
	m, err := torch.NewModel(cfg, torch.CPU, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	n := int(m.NumParams())
	decay := make([]bool, 0, n)
	for _, p := range m.Layout() {
		for range p.Numel() {
			decay = append(decay, len(p.Shape) == 2)
		}
	}
	adam := torch.AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}
	lrs := []float64{1e-3, 2e-3, 3e-3, 3e-3, 3e-3, 2.9e-3, 2.8e-3, 2.7e-3, 2.6e-3, 2.5e-3, 2.4e-3, 2.3e-3}
	r := srng(9)
	gradients := map[string]func(step, j int) float32{
		"one sign":   func(step, j int) float32 { return 1 },
		"gaussian":   func(step, j int) float32 { return float32(r.norm()) },
		"spikes":     func(step, j int) float32 { return float32(r.norm() * math.Pow(10, float64(step%4)*2-3)) },
		"sign flips": func(step, j int) float32 { return float32(1 - 2*(step%2)) },
		"late surge": func(step, j int) float32 { return float32(math.Pow(3, float64(step))) },
		// Cauchy–Schwarz is tight for g_{t−j} ∝ (β1/β2)^j: gradients growing
		// by β2/β1 a step.
		"worst case":  func(step, j int) float32 { return float32(math.Pow(0.95/0.9, float64(step))) },
		"one flipped": func(step, j int) float32 { return float32(1 - 2*((step+j)%7/6)) },
	}
	for name, grad := range gradients {
		t.Run(name, func(t *testing.T) {
			o, err := torch.NewAdamW(m, adam)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			g := make([]float32, n)
			step := func(s int, lr float64) {
				for j := range g {
					g[j] = grad(s, j)
				}
				if err := m.SetGrads(g); err != nil {
					t.Fatal(err)
				}
				if err := o.Step(lr); err != nil {
					t.Fatal(err)
				}
			}
			// Warm-up: moments from gradients of another kind.
			for s := range 5 {
				for j := range g {
					g[j] = float32(r.norm())
				}
				if err := m.SetGrads(g); err != nil {
					t.Fatal(err)
				}
				if err := o.Step(1e-3 * float64(s+1)); err != nil {
					t.Fatal(err)
				}
			}
			start := make([]float32, n)
			if err := m.Params(start); err != nil {
				t.Fatal(err)
			}
			for s, lr := range lrs {
				step(s, lr)
			}
			delta := make([]float32, n)
			if err := m.Params(delta); err != nil {
				t.Fatal(err)
			}
			subtract(start, delta, delta)
			got := boundRatio(delta, start, decay, lrs, adam.Beta1, adam.Beta2, adam.WeightDecay)
			// float32 arithmetic in the kernel: a relative 1e-5 over the
			// bound is rounding, not a broken bound.
			if got > 1+1e-5 {
				t.Errorf("ratio %v: AdamW moved a coordinate past the bound", got)
			}
			if name == "one sign" {
				if got < 0.8 {
					t.Errorf("ratio %v for gradients of one sign, want at least 0.8 (a tight bound)", got)
				}
				for j := range delta {
					delta[j] *= 2
				}
				if r2 := boundRatio(delta, start, decay, lrs, adam.Beta1, adam.Beta2, adam.WeightDecay); r2 <= DefaultConfig().BoundSlack {
					t.Errorf("the update ×2 has ratio %v, want above %v", r2, DefaultConfig().BoundSlack)
				}
			}
			t.Logf("ratio %.4f", got)
		})
	}
}
