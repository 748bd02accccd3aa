package allreduce

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Span is the contiguous, half-open element range [Begin, End) of the flat
// vector that the group member at index Peer reduces.
type Span struct {
	Peer       int
	Begin, End int
}

// Len is the number of elements in the span.
func (s Span) Len() int { return s.End - s.Begin }

// ErrNoReducers is returned when a group has no member that can reduce, so
// no one could own a span.
var ErrNoReducers = errors.New("allreduce: no reducing member in the group")

// Spans splits a vector of n elements into one contiguous span per reducing
// member, in member order, covering [0, n) exactly. Every member is taken to
// contribute its vector (full members and clients); use SpansForRoles when
// the group has aux members, which reduce but send nothing.
//
// bandwidth[i] is member i's measured bandwidth in any unit (bytes/s); 0
// means "not measured" for a member that only sends, and "cannot take a span"
// for a reducer. When no reducer is measured (all zeros) the spans are
// equal; otherwise they are sized by the closed-form optimum of hivemind's
// load-balancing LP (see optimalFractions), which is also the equal split
// when full members and clients share one bandwidth. Aux members get more
// than an equal share, since they move none of their own vector.
func Spans(n int, bandwidth []float64, reduces []bool) ([]Span, error) {
	contributes := make([]bool, len(reduces))
	for i := range contributes {
		contributes[i] = true
	}
	return SpansForRoles(n, bandwidth, reduces, contributes)
}

// SpansForRoles is Spans for a group with explicit roles: a full member
// reduces and contributes, an aux member reduces and contributes nothing
// (weight 0, so it neither sends its vector nor receives the average), and a
// client contributes but reduces nothing.
func SpansForRoles(n int, bandwidth []float64, reduces, contributes []bool) ([]Span, error) {
	if n < 0 {
		return nil, fmt.Errorf("allreduce spans: negative vector length %d", n)
	}
	if len(bandwidth) != len(reduces) || len(contributes) != len(reduces) {
		return nil, fmt.Errorf("allreduce spans: %d bandwidths, %d reduce flags, %d contribute flags for one group",
			len(bandwidth), len(reduces), len(contributes))
	}
	reducers, measured := 0, false
	for i, b := range bandwidth {
		if math.IsNaN(b) || math.IsInf(b, 0) || b < 0 {
			return nil, fmt.Errorf("allreduce spans: member %d has bandwidth %v, want a finite value >= 0", i, b)
		}
		if reduces[i] {
			reducers++
			measured = measured || b > 0
		}
	}
	if reducers == 0 {
		return nil, ErrNoReducers
	}
	var counts []int
	if measured {
		counts = roundFractions(n, optimalFractions(groupLoad(bandwidth, reduces, contributes)))
	} else {
		// No reducer was measured: nothing tells one reducer from another.
		counts = equalCounts(n, reduces)
	}
	return spansFromCounts(counts, reduces), nil
}

// load describes one member's traffic in a butterfly all-reduce of a vector
// of S bytes when it owns fraction f of the vector: it moves S·(a + c·f)
// bytes in each direction, at bandwidth b.
type load struct {
	a, c     float64
	b        float64
	eligible bool // may own a span: reduces and b > 0
	limited  bool // its load limits the round: b > 0 and it moves bytes
}

// groupLoad derives each member's load. With K contributing members:
//   - a full member sends (1−f)·S of its own vector to the other owners and
//     receives as much back averaged; as owner it receives (K−1)·f·S and sends
//     as much back: a = 1, c = K−2 (hivemind's 1 + (N−2)·f);
//   - an aux member only owns: it receives K·f·S and sends K·f·S: a = 0, c = K;
//   - a client only sends: a = 1, f = 0.
//
// The directions carry equal bytes, so one bandwidth per member (the smaller
// of its uplink and downlink) bounds it.
func groupLoad(bandwidth []float64, reduces, contributes []bool) []load {
	k := 0
	for _, c := range contributes {
		if c {
			k++
		}
	}
	loads := make([]load, len(bandwidth))
	for i, b := range bandwidth {
		l := load{b: b}
		if contributes[i] {
			l.a = 1
		}
		if reduces[i] {
			l.c = float64(k)
			if contributes[i] {
				l.c = float64(k - 2)
			}
		}
		l.eligible = reduces[i] && b > 0
		l.limited = b > 0 && (contributes[i] || reduces[i])
		loads[i] = l
	}
	return loads
}

// optimalFractions solves hivemind's load-balancing LP
// (hivemind/averaging/load_balancing.py, optimize_parts_lp) in closed form:
//
//	minimize T  over f, T
//	s.t. Σ_i f_i = 1,  f_i ≥ 0,  f_i = 0 unless i is eligible,
//	     a_i + c_i·f_i ≤ T·b_i   for every limited member i.
//
// Members with b_i = 0 are unmeasured: no constraint, and no span.
//
// Proof of optimality. Let T0 = max over limited i of the least load i can
// have, divided by b_i: a_i/b_i when c_i ≥ 0 or i is not eligible (f_i ≥ 0),
// (a_i+c_i)/b_i when c_i < 0 (f_i ≤ 1). Every feasible T ≥ T0.
//
// Case A, some eligible member has c_i ≤ 0 (K ≤ 2: its load does not grow
// with f_i, or shrinks). Every other eligible member i (c_i > 0: an aux
// member) takes f_i = min((T0·b_i − a_i)/c_i, 1/reducers) ≥ 0, which keeps
// its load within T0; those with c_i ≤ 0 split the rest (at least 1/reducers
// of the vector) by bandwidth, and stay at their least load when c=0. Only
// one member can have c<0: K = 1 and it is the lone contributor; no member
// then has unavoidable traffic (a_i > 0 means contributing), so T0 = 0, the
// caps are 0 and it takes f = 1, its least load a_i+c_i = 0. Every load is
// at most T0, so T = T0: optimal.
//
// Case B, every eligible c_i > 0. A feasible f needs f_i ≤ (T·b_i − a_i)/c_i;
// summing over eligible i, 1 ≤ T·Σ b_i/c_i − Σ a_i/c_i, so
// T ≥ T* = (1 + Σ a_i/c_i) / Σ b_i/c_i, and T ≥ max(T0, T*). At
// T = max(T0, T*) the caps (T·b_i − a_i)/c_i are ≥ 0 (T ≥ a_i/b_i) and sum to
// ≥ 1 (= 1 at T*), so f_i = cap_i / Σ cap is feasible and attains the bound.
// When T* ≥ T0 every eligible member finishes at exactly T (water-filling).
//
// TestOptimalFractionsMatchLP checks this against an exact vertex enumeration
// of the LP.
func optimalFractions(loads []load) []float64 {
	f := make([]float64, len(loads))
	// Case A: members whose load does not grow with their share.
	var free float64
	for _, l := range loads {
		if l.eligible && l.c <= 0 {
			free += l.b
		}
	}
	if free > 0 {
		// Any share for a member whose load grows with it (an aux member
		// where K = 2) that keeps its load within T0 costs nothing; each
		// takes that much, up to an equal share of the reducers, so that a
		// validator in a group of two miners still owns a span and sees
		// their parts.
		t0, reducers := floorTime(loads), 0
		for _, l := range loads {
			if l.eligible {
				reducers++
			}
		}
		rest := 1.0
		for i, l := range loads {
			if l.eligible && l.c > 0 {
				f[i] = math.Min(math.Max(0, (float64(t0*l.b)-l.a)/l.c), 1/float64(reducers)) // float64(): no FMA on arm64 (see roundFractions)
				rest -= f[i]
			}
		}
		for i, l := range loads {
			if l.eligible && l.c <= 0 {
				f[i] = rest * l.b / free
			}
		}
		return f
	}
	t := math.Max(floorTime(loads), waterLevel(loads))
	var total float64
	for i, l := range loads {
		if l.eligible {
			f[i] = math.Max(0, (float64(t*l.b)-l.a)/l.c) // float64(): no FMA on arm64 (see roundFractions)
			total += f[i]
		}
	}
	for i := range f {
		f[i] /= total
	}
	return f
}

// floorTime is T0: the least time any assignment can take, set by the member
// whose own unavoidable traffic is slowest.
func floorTime(loads []load) float64 {
	var t float64
	for _, l := range loads {
		if !l.limited {
			continue
		}
		least := l.a
		if l.eligible && l.c < 0 {
			least = l.a + l.c
		}
		t = math.Max(t, least/l.b)
	}
	return t
}

// waterLevel is T* = (1 + Σ a_i/c_i) / Σ b_i/c_i over eligible members, all
// of which have c_i > 0: the time at which every owner's cap sums to one.
func waterLevel(loads []load) float64 {
	num, den := 1.0, 0.0
	for _, l := range loads {
		if l.eligible {
			num += l.a / l.c
			den += l.b / l.c
		}
	}
	return num / den
}

// roundTime is the modeled round time, in units of S, of the assignment f:
// the slowest limited member's bytes over its bandwidth.
func roundTime(loads []load, f []float64) float64 {
	var t float64
	for i, l := range loads {
		if l.limited {
			t = math.Max(t, (l.a+float64(l.c*f[i]))/l.b) // float64(): no FMA on arm64 (see roundFractions)
		}
	}
	return t
}

// roundFractions turns fractions into element counts summing exactly to n by
// largest remainders (Hamilton's method); ties go to the earlier member.
// Since the quotas sum to n, the floors leave fewer elements over than there
// are members with a positive fraction, so each gets at most one more.
func roundFractions(n int, f []float64) []int {
	var total float64
	for _, x := range f {
		total += x
	}
	counts := make([]int, len(f))
	var order []int
	left := n
	rem := make([]float64, len(f))
	for i, x := range f {
		if x <= 0 {
			continue
		}
		// float64(): Go would fuse the product into the subtraction on arm64
		// (one FMA), not on amd64; every member computes the spans, and they
		// must agree.
		q := float64(x / total * float64(n))
		counts[i] = int(math.Floor(q))
		rem[i] = q - float64(counts[i])
		left -= counts[i]
		order = append(order, i)
	}
	sort.SliceStable(order, func(x, y int) bool { return rem[order[x]] > rem[order[y]] })
	for k := 0; left > 0; k, left = k+1, left-1 {
		counts[order[k%len(order)]]++
	}
	return counts
}

// equalCounts gives every reducer n/r elements, the first n%r one more.
func equalCounts(n int, reduces []bool) []int {
	r := 0
	for _, ok := range reduces {
		if ok {
			r++
		}
	}
	counts := make([]int, len(reduces))
	k := 0
	for i, ok := range reduces {
		if ok {
			counts[i] = n / r
			if k < n%r {
				counts[i]++
			}
			k++
		}
	}
	return counts
}

// spansFromCounts lays the reducers' counts end to end in member order.
func spansFromCounts(counts []int, reduces []bool) []Span {
	var spans []Span
	at := 0
	for i, ok := range reduces {
		if ok {
			spans = append(spans, Span{Peer: i, Begin: at, End: at + counts[i]})
			at += counts[i]
		}
	}
	return spans
}
