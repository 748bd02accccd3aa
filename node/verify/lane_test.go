package verify

import (
	"math"
	"slices"
	"testing"
)

func TestSampleRange(t *testing.T) {
	r := newRNG(1, 2, "m")
	for _, c := range []struct {
		lo, hi int64
		n      int
	}{{0, 10, 3}, {5, 6, 1}, {5, 6, 4}, {0, 1 << 40, 20}, {100, 120, 20}, {100, 120, 50}, {7, 7, 3}, {0, 64, 63}} {
		got := sampleRange(r, c.lo, c.hi, c.n)
		want := min(int64(c.n), max(0, c.hi-c.lo))
		if int64(len(got)) != want {
			t.Errorf("%+v: %d values, want %d", c, len(got), want)
		}
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Errorf("%+v: %v not sorted and distinct", c, got)
		}
		for _, x := range got {
			if x < c.lo || x >= c.hi {
				t.Errorf("%+v: %d outside the range", c, x)
			}
		}
	}
	// Every value of a range is drawn about as often as every other.
	counts := make([]int, 10)
	for range 20000 {
		for _, x := range sampleRange(r, 0, 10, 3) {
			counts[x]++
		}
	}
	for v, c := range counts {
		// 6000 expected; the binomial's sd is 65.
		if c < 5700 || c > 6300 {
			t.Errorf("value %d drawn %d times of 60000, want about 6000", v, c)
		}
	}
}

func TestRNGDependsOnAllKeys(t *testing.T) {
	a := newRNG(1, 2, "m").next()
	for _, r := range []*rng{newRNG(2, 2, "m"), newRNG(1, 3, "m"), newRNG(1, 2, "n")} {
		if r.next() == a {
			t.Error("a different seed, epoch or miner drew the same value")
		}
	}
	if newRNG(1, 2, "m").next() != a {
		t.Error("the same keys drew different values")
	}
}

func TestWelch(t *testing.T) {
	// mean(a) = 2, var(a) = 1; mean(b) = 0.25, var(b) = 0.25:
	// t = 1.75 / √(1/3 + 0.25/4).
	a, b := []float64{1, 2, 3}, []float64{0, 0, 0, 1}
	if got, want := welch(a, b), 1.75/math.Sqrt(1.0/3+0.25/4); math.Abs(got-want) > 1e-12 {
		t.Errorf("welch = %v, want %v", got, want)
	}
	if got := welch(b, a); math.Abs(got+1.75/math.Sqrt(1.0/3+0.25/4)) > 1e-12 {
		t.Errorf("welch(b, a) = %v, want the opposite", got)
	}
	for _, c := range []struct {
		a, b []float64
		want float64
	}{{[]float64{1, 1}, []float64{0, 0}, math.Inf(1)}, {[]float64{0, 0}, []float64{1}, math.Inf(-1)}, {[]float64{2, 2}, []float64{2, 2, 2}, 0}} {
		if got := welch(c.a, c.b); got != c.want {
			t.Errorf("welch(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestSketchCosine(t *testing.T) {
	r := srng(4)
	const n, dim = 20000, 1024
	a, b := make([]float32, n), make([]float32, n)
	for j := range a {
		a[j], b[j] = float32(r.norm()), float32(r.norm())
	}
	sa, sb := newSketch(a, dim, 7), newSketch(b, dim, 7)
	if c := sa.cos(sa); math.Abs(c-1) > 1e-12 {
		t.Errorf("a sketch's cosine with itself is %v", c)
	}
	scaled := slices.Clone(a)
	for j := range scaled {
		scaled[j] *= -3
	}
	if c := sa.cos(newSketch(scaled, dim, 7)); math.Abs(c+1) > 1e-9 {
		t.Errorf("cosine with −3a is %v, want −1", c)
	}
	// Independent vectors: the estimate's sd is about 1/√dim = 0.031.
	if c := sa.cos(sb); math.Abs(c) > 5/math.Sqrt(dim) {
		t.Errorf("independent vectors' sketch cosine %v", c)
	}
	// A vector and a mix of it with an independent one: cosine 1/√2.
	mix := make([]float32, n)
	for j := range mix {
		mix[j] = a[j] + b[j]
	}
	exact := cosine(dot(a, mix), dot(a, a), dot(mix, mix))
	if c := sa.cos(newSketch(mix, dim, 7)); math.Abs(c-exact) > 5/math.Sqrt(dim) {
		t.Errorf("sketch cosine %v, exact %v", c, exact)
	}
}

func TestPoolRelation(t *testing.T) {
	// Three updates along e1 with a little e2, a previous average along e2:
	// each update's leave-one-out mean is along e1, so its coordinate on
	// "now" is large and on "prev" small.
	vecs := [][]float32{{1, 0.1, 0}, {1, -0.1, 0.1}, {1, 0, -0.1}, {0, 1, 0}}
	prev := []float32{0, 1, 0}
	in := []bool{true, true, true, true}
	p := newPool(vecs, in, prev, 3)
	pp := dot(prev, prev)
	for i := range 3 {
		r := p.relate(i, vecs[i], prev, dot(vecs[i], vecs[i]), pp)
		if !(r.now > 0.5 && r.before < r.now) {
			t.Errorf("update %d: now %v, before %v", i, r.now, r.before)
		}
	}
	// The fourth points along the previous average.
	r := p.relate(3, vecs[3], prev, 1, pp)
	if !(r.before > 0.9 && r.before-r.now > 0.5) {
		t.Errorf("stale update: now %v, before %v", r.now, r.before)
	}
	if math.Abs(r.prevCos-1) > 1e-12 {
		t.Errorf("stale update's cosine with the previous average %v", r.prevCos)
	}
}
