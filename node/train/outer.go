package train

import "fmt"

// OuterNesterov is DiLoCo's outer optimizer: SGD with Nesterov momentum on
// the averaged pseudo-gradient Δ = θ_start − θ_local (Douillard et al.
// 2023, "DiLoCo", Alg. 1, line 12):
//
//	v ← μv + Δ,  θ ← θ − η(Δ + μv).
type OuterNesterov struct {
	LR       float64 // η
	Momentum float64 // μ, in [0, 1)
}

// Step takes one outer step: theta (the parameters the epoch started from)
// and v (the momentum buffer, zero at the start of a run) change in place.
// The slices must have one value per parameter each.
func (o OuterNesterov) Step(theta, delta, v []float32) error {
	if len(delta) != len(theta) || len(v) != len(theta) {
		return fmt.Errorf("outer step: %d parameters, %d deltas, %d momentum values", len(theta), len(delta), len(v))
	}
	lr, mu := float32(o.LR), float32(o.Momentum)
	// Every product is rounded on its own (float32(...)): Go fuses a*b+c
	// into one FMA on arm64 but not on amd64, and miners of both must
	// hold the same parameters.
	for i, d := range delta {
		v[i] = float32(mu*v[i]) + d
		theta[i] -= float32(lr * (d + float32(mu*v[i])))
	}
	return nil
}
