package train

import (
	"math"
	"testing"
)

// TestOuterNesterov checks two outer steps against numbers worked by hand
// (η = 0.7, μ = 0.9). A step without the momentum term, plain SGD θ − ηΔ,
// or heavy-ball θ − ηv would each give other numbers.
//
// Step 1, θ = (1, −2), Δ = (0.5, 0.25), v = (0.2, −0.4):
//
//	v = 0.9·0.2 + 0.5 = 0.68,       θ = 1 − 0.7·(0.5 + 0.9·0.68)    = 0.2216
//	v = 0.9·(−0.4) + 0.25 = −0.11,  θ = −2 − 0.7·(0.25 − 0.9·0.11)  = −2.1057
//
// Step 2, Δ = (0.5, 0.25) again:
//
//	v = 0.9·0.68 + 0.5 = 1.112,     θ = 0.2216 − 0.7·(0.5 + 0.9·1.112)   = −0.82896
//	v = 0.9·(−0.11) + 0.25 = 0.151, θ = −2.1057 − 0.7·(0.25 + 0.9·0.151) = −2.3758
func TestOuterNesterov(t *testing.T) {
	o := OuterNesterov{LR: 0.7, Momentum: 0.9}
	theta, delta, v := []float32{1, -2}, []float32{0.5, 0.25}, []float32{0.2, -0.4}
	for step, want := range []struct{ theta, v [2]float64 }{
		{[2]float64{0.2216, -2.1057}, [2]float64{0.68, -0.11}},
		{[2]float64{-0.82896, -2.37583}, [2]float64{1.112, 0.151}},
	} {
		if err := o.Step(theta, delta, v); err != nil {
			t.Fatal(err)
		}
		for i := range theta {
			if math.Abs(float64(theta[i])-want.theta[i]) > 1e-5 || math.Abs(float64(v[i])-want.v[i]) > 1e-5 {
				t.Fatalf("step %d, parameter %d: θ = %v, v = %v; want θ = %v, v = %v", step+1, i, theta[i], v[i], want.theta[i], want.v[i])
			}
		}
	}
	if err := o.Step(theta, delta[:1], v); err == nil {
		t.Fatal("a step with fewer deltas than parameters")
	}
}
