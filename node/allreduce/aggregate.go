package allreduce

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Aggregation is how a span's owner combines its contributors' values
// into the span's result. Every rule is deterministic: it reads the
// contributors in member order and accumulates in float64, each product
// converted to float64 before it is added (the conversion forbids the
// fused multiply-add Go may otherwise emit on arm64), so any owner of a
// span, or a member checking it (RoundConfig.Recompute), computes the same
// bits from the same parts on any machine.
type Aggregation uint8

const (
	// Mean is the exact weighted mean, each contributor weighted by its
	// Member.Weight (its samples).
	Mean Aggregation = iota
	// TrimmedMean is, per coordinate, the weighted mean of what is left
	// once TrimFraction of the total weight is cut from each end of the
	// sorted values (a value on a cut's boundary counts in part).
	TrimmedMean
	// CenteredClip is Karimireddy, He and Jaggi's centered clipping (2021;
	// BTARD, Gorbunov et al. 2021, applies it per part): from the
	// coordinate-wise weighted median v, ClipIterations times
	// v ← v + Σ wᵢ·(xᵢ − v)·min(1, τ/‖xᵢ − v‖) / Σ wᵢ over each part, with τ
	// the weighted median of the distances ‖xᵢ − v₀‖ from the start.
	CenteredClip
)

// Parameters of the robust rules.
const (
	// TrimFraction is the share of the total weight TrimmedMean cuts from
	// each end: up to a fifth of the weight may be outliers on either side.
	TrimFraction = 0.2
	// ClipIterations is CenteredClip's number of steps.
	ClipIterations = 3
	// MaxWeightRatio caps a contributor's weight, in the robust rules, at
	// this multiple of the contributors' median weight: weights are
	// self-declared sample counts, and one claiming a million samples
	// would otherwise hold most of the weight, which no rule that trims or
	// clips by weight can cut.
	MaxWeightRatio = 2
)

// Aggregations are the rules' names, in order, as configs spell them.
var Aggregations = []string{"mean", "trimmed_mean", "centered_clip"}

// ParseAggregation reads a rule's name.
func ParseAggregation(s string) (Aggregation, error) {
	if i := slices.Index(Aggregations, s); i >= 0 {
		return Aggregation(i), nil
	}
	return 0, fmt.Errorf("aggregation %q: want one of %s", s, strings.Join(Aggregations, ", "))
}

func (a Aggregation) String() string {
	if int(a) < len(Aggregations) {
		return Aggregations[a]
	}
	return fmt.Sprintf("Aggregation(%d)", uint8(a))
}

// aggregator holds one round's scratch space for the robust rules.
type aggregator struct {
	rule    Aggregation
	order   []int     // contributors sorted by value at a coordinate
	xs      []float32 // their values at it, in that order
	w       []float64 // the contributors' (capped) weights
	total   float64   // their sum
	v, step []float64 // CenteredClip's center and its update
	dist    []float64
}

// combine writes into out (length hi-lo) the rule's result over the
// contributors' values vals[c][off : off+len(out)] with weights w.
func (a *aggregator) combine(out []float32, vals [][]float32, off int, weights []float64) {
	k := len(vals)
	if a.rule == Mean || k < 3 {
		// Two values leave nothing to trim or clip against.
		var total float64
		for _, w := range weights {
			total += w
		}
		for i := range out {
			var acc float64
			for c := range vals {
				acc += float64(weights[c] * float64(vals[c][off+i]))
			}
			out[i] = float32(acc / total)
		}
		return
	}
	a.w = cappedWeights(a.w[:0], weights)
	a.total = 0
	for _, w := range a.w {
		a.total += w
	}
	if cap(a.order) < k {
		a.order, a.xs = make([]int, k), make([]float32, k)
	}
	order := a.order[:k]
	a.xs = a.xs[:k]
	switch a.rule {
	case TrimmedMean:
		for i := range out {
			out[i] = float32(a.trimmed(order, vals, off+i))
		}
	case CenteredClip:
		a.clip(out, order, vals, off)
	}
}

// cappedWeights appends to dst each weight capped at MaxWeightRatio × the
// median weight (the lower median of an even count).
func cappedWeights(dst, weights []float64) []float64 {
	dst = append(dst, weights...)
	sorted := slices.Clone(weights)
	slices.Sort(sorted)
	limit := MaxWeightRatio * sorted[(len(sorted)-1)/2]
	for i := range dst {
		dst[i] = min(dst[i], limit)
	}
	return dst
}

// sortAt orders the contributors by their value at coordinate j into
// a.order, their values into a.xs, ties by member order: an insertion
// sort, which for a group's few contributors beats a general sort several
// times over, and is stable.
func (a *aggregator) sortAt(vals [][]float32, j int) {
	order, xs := a.order[:len(vals)], a.xs
	for c := range order {
		x := vals[c][j]
		i := c
		for ; i > 0 && xs[i-1] > x; i-- {
			xs[i], order[i] = xs[i-1], order[i-1]
		}
		xs[i], order[i] = x, c
	}
}

// trimmed is the weighted trimmed mean at coordinate j.
func (a *aggregator) trimmed(order []int, vals [][]float32, j int) float64 {
	a.sortAt(vals, j)
	cut := TrimFraction * a.total
	lo, hi := cut, a.total-cut // the kept weight lies between these
	var acc, kept, at float64
	for i, c := range order {
		w := a.w[c]
		from, to := max(at, lo), min(at+w, hi)
		if to > from {
			acc += float64((to - from) * float64(a.xs[i]))
			kept += to - from
		}
		at += w
	}
	return acc / kept
}

// median is the weighted median at coordinate j: the first value, in
// sorted order, at which half the weight is reached.
func (a *aggregator) median(order []int, vals [][]float32, j int) float64 {
	a.sortAt(vals, j)
	var at float64
	for i, c := range order {
		if at += a.w[c]; 2*at >= a.total {
			return float64(a.xs[i])
		}
	}
	return float64(a.xs[len(order)-1])
}

// clip runs CenteredClip over one part.
func (a *aggregator) clip(out []float32, order []int, vals [][]float32, off int) {
	n, k := len(out), len(vals)
	a.v = slices.Grow(a.v[:0], n)[:n]
	a.step = slices.Grow(a.step[:0], n)[:n]
	a.dist = slices.Grow(a.dist[:0], k)[:k]
	for i := range a.v {
		a.v[i] = a.median(order, vals, off+i)
	}
	distances := func() {
		for c := range vals {
			var s float64
			for i, v := range a.v {
				d := float64(vals[c][off+i]) - v
				s += float64(d * d)
			}
			a.dist[c] = math.Sqrt(s)
		}
	}
	distances()
	tau := weightedMedian(a.dist, a.w)
	total := a.total
	for it := 0; it < ClipIterations; it++ {
		if it > 0 {
			distances()
		}
		clear(a.step)
		for c := range vals {
			f := a.w[c]
			if a.dist[c] > tau {
				f *= tau / a.dist[c]
			}
			for i, v := range a.v {
				a.step[i] += float64(f * (float64(vals[c][off+i]) - v))
			}
		}
		for i := range a.v {
			a.v[i] += a.step[i] / total
		}
	}
	for i, v := range a.v {
		out[i] = float32(v)
	}
}

// weightedMedian is the lower weighted median of xs.
func weightedMedian(xs, w []float64) float64 {
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case xs[a] < xs[b]:
			return -1
		case xs[a] > xs[b]:
			return 1
		}
		return a - b
	})
	var total, at float64
	for _, x := range w {
		total += x
	}
	for _, i := range idx {
		if at += w[i]; 2*at >= total {
			return xs[i]
		}
	}
	return xs[idx[len(idx)-1]]
}
