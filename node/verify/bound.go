package verify

import "math"

// adamRatioBound is the largest |m̂_t/√v̂_t| that AdamW's bias-corrected
// moments reach for any gradients, at any step t ≥ 1, or +Inf when
// β1² ≥ β2 (then none exists). With r = β1²/β2, Cauchy–Schwarz on
// m_t = (1−β1)·Σ_j β1^j·g_{t−j} against v_t = (1−β2)·Σ_j β2^j·g²_{t−j} gives
//
//	|m̂_t|/√v̂_t ≤ (1−β1)/(1−β1^t) · √((1−β2^t)/(1−β2)) · √((1−r^t)/(1−r))
//
// (1 at t = 1; 1.165 as t → ∞ for GPT-2's β = (0.9, 0.95)). Adam's ε only
// lowers the ratio. The bound holds whatever moments a miner carried into
// the epoch, since they too came from gradients.
func adamRatioBound(b1, b2 float64) float64 {
	r := b1 * b1 / b2
	if !(b1 >= 0 && b1 < 1 && b2 > 0 && b2 < 1) || r >= 1 {
		return math.Inf(1)
	}
	best := 0.0
	p1, p2, pr := 1.0, 1.0, 1.0 // β1^t, β2^t, r^t
	for t := 1; t <= 1_000_000; t++ {
		p1, p2, pr = p1*b1, p2*b2, pr*r
		b := (1 - b1) / (1 - p1) * math.Sqrt((1-p2)/(1-b2)) * math.Sqrt((1-pr)/(1-r))
		best = max(best, b)
		if p1 < 1e-17 && p2 < 1e-17 && pr < 1e-17 {
			break // every later term equals the limit to float64 precision
		}
	}
	return best
}

// boundRatio returns max_j |Δ_j| / bound_j, where bound_j is the furthest
// coordinate j can move in AdamW steps with learning rates lrs:
//
//	|Δ_j| ≤ Σ_t lr_t · (B + λ_j·|θ_j|)
//
// with B = adamRatioBound, θ the start and λ_j the weight decay (matrices
// only, as in native/adamw.cpp). Each step θ ← θ(1 − lr·λ) − lr·u, |u| ≤ B,
// moves θ from the start by at most lr·(B + λ·|θ_start|) more, since
// (θ − θ₀)(1 − lr·λ) − lr·λ·θ₀ shrinks the distance so far.
func boundRatio(delta, start []float32, decay []bool, lrs []float64, b1, b2, wd float64) float64 {
	var sum float64
	for _, lr := range lrs {
		sum += lr
	}
	b := adamRatioBound(b1, b2)
	if math.IsInf(b, 1) {
		return 0 // no bound to check against
	}
	worst := 0.0
	for j, d := range delta {
		lim := b
		if decay[j] {
			lim += wd * math.Abs(float64(start[j]))
		}
		lim *= sum
		ad := math.Abs(float64(d))
		if ad == 0 {
			continue
		}
		if lim == 0 {
			return math.Inf(1)
		}
		worst = max(worst, ad/lim)
	}
	return worst
}
