package train

import (
	"math"
	"testing"
)

func TestSchedule(t *testing.T) {
	s := Schedule{LR: 1e-3, MinLR: 1e-4, Warmup: 10, Total: 110}
	for _, c := range []struct {
		step int
		want float64
	}{
		{0, 1e-4},    // first warmup step: LR/10
		{4, 5e-4},    // half way up
		{9, 1e-3},    // warmup ends at the peak
		{10, 1e-3},   // cosine starts at the peak
		{60, 5.5e-4}, // half way down: the midpoint of LR and MinLR
		{110, 1e-4},  // the end
		{500, 1e-4},  // and after it
	} {
		if got := s.At(c.step); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("step %d: lr %g, want %g", c.step, got, c.want)
		}
	}
	prev := math.Inf(1)
	for step := 10; step <= 110; step++ {
		lr := s.At(step)
		if lr > prev {
			t.Fatalf("lr rises during decay at step %d: %g after %g", step, lr, prev)
		}
		prev = lr
	}
}
