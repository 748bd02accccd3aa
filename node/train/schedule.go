package train

import "math"

// Schedule is the learning rate per optimizer step: linear warmup from
// near 0 to LR over Warmup steps, then cosine decay to MinLR at step Total
// (Loshchilov & Hutter, "SGDR", 2017, eq. 5, one cycle), MinLR after.
type Schedule struct {
	LR, MinLR     float64
	Warmup, Total int
}

// At returns the learning rate of step (0-based).
func (s Schedule) At(step int) float64 {
	if step < s.Warmup {
		return s.LR * float64(step+1) / float64(s.Warmup)
	}
	if step >= s.Total || s.Total <= s.Warmup {
		return s.MinLR
	}
	progress := float64(step-s.Warmup) / float64(s.Total-s.Warmup)
	// float64(): no FMA here on arm64, where Go fuses a*b+c and amd64 does
	// not. math.Cos is compiled with FMAs on arm64, so its last bit may
	// still differ there; AdamW takes the rate rounded to float32.
	return s.MinLR + float64(0.5*(1+math.Cos(math.Pi*progress))*(s.LR-s.MinLR))
}
