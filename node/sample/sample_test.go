package sample

import (
	"math"
	"testing"
)

func TestGreedyAndTopOne(t *testing.T) {
	logits := []float32{0.1, 2.5, -1, 2.4}
	for _, s := range []*Sampler{{}, must(New(1, 1, 0, 3))} {
		if id, err := s.Next(logits); err != nil || id != 1 {
			t.Errorf("%+v: got %d, %v; want the argmax 1", s, id, err)
		}
	}
}

func must(s *Sampler, err error) *Sampler {
	if err != nil {
		panic(err)
	}
	return s
}

// Sampling at temperature 1 follows softmax(logits); top-k and top-p never
// return a token outside the kept set.
func TestSamplingFollowsTheDistribution(t *testing.T) {
	logits := []float32{0, float32(math.Log(2)), float32(math.Log(3)), float32(math.Log(4))} // p = 0.1 .. 0.4
	cases := []struct {
		name string
		s    *Sampler
		want []float64
	}{
		{"full", must(New(1, 0, 0, 1)), []float64{0.1, 0.2, 0.3, 0.4}},
		{"top-2", must(New(1, 2, 0, 2)), []float64{0, 0, 3.0 / 7, 4.0 / 7}},
		{"top-p 0.65", must(New(1, 0, 0.65, 3)), []float64{0, 0, 3.0 / 7, 4.0 / 7}},
		{"hot", must(New(1e6, 0, 0, 4)), []float64{0.25, 0.25, 0.25, 0.25}},
	}
	const n = 40000
	for _, c := range cases {
		counts := make([]float64, len(logits))
		for i := 0; i < n; i++ {
			id, err := c.s.Next(logits)
			if err != nil {
				t.Fatal(err)
			}
			counts[id]++
		}
		for i, want := range c.want {
			got := counts[i] / n
			// 5 standard deviations of a binomial proportion.
			if tol := 5 * math.Sqrt(want*(1-want)/n); math.Abs(got-want) > tol+1e-12 {
				t.Errorf("%s: token %d drawn %.4f of the time, want %.4f", c.name, i, got, want)
			}
		}
	}
}

func TestSeedRepeats(t *testing.T) {
	logits := make([]float32, 1000)
	for i := range logits {
		logits[i] = float32(i % 17)
	}
	a, b := must(New(0.8, 40, 0.95, 9)), must(New(0.8, 40, 0.95, 9))
	for i := 0; i < 100; i++ {
		x, _ := a.Next(logits)
		y, _ := b.Next(logits)
		if x != y {
			t.Fatalf("draw %d: %d vs %d with the same seed", i, x, y)
		}
	}
}

func TestBadInput(t *testing.T) {
	for _, c := range []struct {
		temp float64
		k    int
		p    float64
	}{{-1, 0, 0}, {math.NaN(), 0, 0}, {1, -2, 0}, {1, 0, 1.5}} {
		if _, err := New(c.temp, c.k, c.p, 0); err == nil {
			t.Errorf("New(%v, %d, %v) accepted", c.temp, c.k, c.p)
		}
	}
	s := must(New(1, 0, 0, 0))
	if _, err := s.Next(nil); err == nil {
		t.Error("no logits accepted")
	}
	if _, err := s.Next([]float32{1, float32(math.NaN())}); err == nil {
		t.Error("NaN logit accepted")
	}
}
