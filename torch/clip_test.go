package torch

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestClipGradNorm: the norm is the gradient's L2 norm, the same bits at
// any thread count (miners in gradients mode clip the same averaged
// gradient by it, on machines with other core counts), and clipping brings
// it down to max_norm.
func TestClipGradNorm(t *testing.T) {
	c := NewConfig(2, 2, 64, 32, 1000) // ~170k parameters: several of the CPU norm's chunks
	m := newTestModel(t, c, 5)
	g := make([]float32, m.NumParams())
	rng := rand.New(rand.NewPCG(5, 6))
	var sum float64
	for i := range g {
		g[i] = float32(rng.NormFloat64() * 1e-3)
		sum += float64(g[i]) * float64(g[i])
	}
	if err := m.SetGrads(g); err != nil {
		t.Fatal(err)
	}
	want := math.Sqrt(sum)
	threads := Threads()
	defer SetThreads(threads)
	var first float64
	for _, n := range []int{1, 2, 3, 8} {
		if err := SetThreads(n); err != nil {
			t.Fatal(err)
		}
		norm, err := m.ClipGradNorm(0)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			first = norm
		}
		// Exact: the same chunks summed in the same order at any thread count.
		if norm != first {
			t.Errorf("norm at %d threads %v, at 1 thread %v", n, norm, first)
		}
	}
	t.Logf("norm %.17g, float64 reference %.17g", first, want)
	// Both sums add exact squares in float64, in other orders: each is within
	// (n-1)·2^-53 relative of the true sum (Higham, "Accuracy and
	// Stability", eq. 4.4, nonnegative terms), the square root halves that.
	if tol := float64(len(g)) * 0x1p-53 * want; math.Abs(first-want) > tol {
		t.Errorf("norm %.17g, float64 reference %.17g: %.3g apart, bound %.3g", first, want, math.Abs(first-want), tol)
	}
	if _, err := m.ClipGradNorm(want / 2); err != nil {
		t.Fatal(err)
	}
	// Within 1e-5: clip_grad_norm_ divides by norm+1e-6 (2e-6 of this
	// norm) and the scaled gradient is float32.
	if after, _ := m.ClipGradNorm(0); math.Abs(after-want/2) > 1e-5*want {
		t.Errorf("norm %.9g after clipping to %.9g", after, want/2)
	}
}
