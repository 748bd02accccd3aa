// Package sample draws the next token from a language model's logits:
// temperature, top-k and nucleus (top-p) sampling, or greedy decoding.
package sample

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Sampler turns logits into token ids. The zero value decodes greedily.
type Sampler struct {
	Temperature float64 // 0: always the most likely token
	TopK        int     // keep only the k most likely tokens; 0: all
	TopP        float64 // keep the smallest set whose probability reaches p; 0 or 1: all
	rng         *rand.Rand
	cand        []candidate
}

type candidate struct {
	id    int32
	logit float64
}

// New returns a sampler whose draws are a function of seed.
func New(temperature float64, topK int, topP float64, seed uint64) (*Sampler, error) {
	switch {
	case math.IsNaN(temperature) || temperature < 0:
		return nil, fmt.Errorf("temperature must be >= 0, got %v", temperature)
	case topK < 0:
		return nil, fmt.Errorf("top-k must be >= 0, got %d", topK)
	case math.IsNaN(topP) || topP < 0 || topP > 1:
		return nil, fmt.Errorf("top-p must be in [0, 1], got %v", topP)
	}
	return &Sampler{Temperature: temperature, TopK: topK, TopP: topP, rng: rand.New(rand.NewPCG(seed, 0x64747261696e))}, nil
}

// Next picks a token from logits (one per vocabulary entry).
func (s *Sampler) Next(logits []float32) (int32, error) {
	if len(logits) == 0 {
		return 0, fmt.Errorf("sample: no logits")
	}
	for i, l := range logits {
		if math.IsNaN(float64(l)) {
			return 0, fmt.Errorf("sample: logit %d is NaN", i)
		}
	}
	if s.Temperature == 0 || s.TopK == 1 {
		return int32(argmax(logits)), nil
	}
	c := s.cand[:0]
	for i, l := range logits {
		c = append(c, candidate{int32(i), float64(l) / s.Temperature})
	}
	s.cand = c
	if s.TopK > 0 && s.TopK < len(c) || s.TopP > 0 && s.TopP < 1 {
		slices.SortFunc(c, func(a, b candidate) int { return cmp.Compare(b.logit, a.logit) })
		if s.TopK > 0 && s.TopK < len(c) {
			c = c[:s.TopK]
		}
	}
	// Softmax with the max subtracted, as probabilities relative to the best.
	top := c[0].logit
	for _, x := range c {
		top = max(top, x.logit)
	}
	w := make([]float64, len(c))
	var sum float64
	for i, x := range c {
		w[i] = math.Exp(x.logit - top)
		sum += w[i]
	}
	if s.TopP > 0 && s.TopP < 1 {
		// c is sorted: keep the shortest prefix reaching TopP (Holtzman et
		// al., "The Curious Case of Neural Text Degeneration", 2020).
		var acc float64
		for i := range w {
			acc += w[i]
			if acc >= s.TopP*sum {
				c, w, sum = c[:i+1], w[:i+1], acc
				break
			}
		}
	}
	r := s.rng.Float64() * sum
	for i := range w {
		if r < w[i] {
			return c[i].id, nil
		}
		r -= w[i]
	}
	return c[len(c)-1].id, nil
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
