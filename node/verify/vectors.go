package verify

import (
	"math"
	"slices"

	"github.com/dtrain-dev/dtrain/node/data"
)

// dot is ⟨a, b⟩ accumulated in float64.
func dot(a, b []float32) float64 {
	var s float64
	for i, x := range a {
		s += float64(x) * float64(b[i])
	}
	return s
}

// cosine is ⟨a,b⟩/(‖a‖‖b‖) from the three products; 0 when either is 0.
func cosine(ab, aa, bb float64) float64 {
	if aa <= 0 || bb <= 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// sketch is a count sketch of a vector (Charikar, Chen & Farach-Colton,
// "Finding frequent items in data streams", 2002): coordinate j adds
// ±x_j to one of dim buckets, both chosen by a hash of (seed, j). Inner
// products of sketches estimate those of the vectors, with an error of
// about ‖a‖‖b‖/√dim, so a validator keeps a few KiB per past update
// instead of the update.
type sketch []float64

func newSketch(v []float32, dim int, seed uint64) sketch {
	s := make(sketch, dim)
	for j, x := range v {
		h := data.SplitMix64(seed ^ uint64(j))
		b := int((h & 0xffffffff) * uint64(dim) >> 32)
		if h>>63 == 1 {
			s[b] -= float64(x)
		} else {
			s[b] += float64(x)
		}
	}
	return s
}

func (s sketch) cos(t sketch) float64 {
	var st, ss, tt float64
	for i := range s {
		st += s[i] * t[i]
		ss += s[i] * s[i]
		tt += t[i] * t[i]
	}
	return cosine(st, ss, tt)
}

// pool is a sum of updates and the products an update needs to compare
// itself with the mean of the others (leave-one-out) and with the
// previous average, without a second pass over the updates.
type pool struct {
	sum     []float32
	members []bool
	count   int
	ss      float64 // ‖Σ‖²
	sp      float64 // ⟨Σ, prev⟩
}

func newPool(vecs [][]float32, in []bool, prev []float32, n int) *pool {
	p := &pool{sum: make([]float32, n), members: in}
	for i, v := range vecs {
		if !in[i] {
			continue
		}
		p.count++
		for j, x := range v {
			p.sum[j] += x
		}
	}
	p.ss = dot(p.sum, p.sum)
	if prev != nil {
		p.sp = dot(p.sum, prev)
	}
	return p
}

// others is how many pool members are not update i.
func (p *pool) others(i int) int {
	if p.members[i] {
		return p.count - 1
	}
	return p.count
}

// relation is how update i lies against the mean of the other pool
// members (peer) and against the previous average (prev).
type relation struct {
	peerCos, prevCos float64
	// now, before: i's coordinates on the unit vectors of the others'
	// mean and of the previous average, by least squares (NaN when the
	// two are nearly parallel or prev is unknown).
	now, before float64
}

func (p *pool) relate(i int, v, prev []float32, vv, pp float64) relation {
	vs := dot(v, p.sum)
	lo, ll := vs, p.ss // ⟨v, LOO⟩ and ‖LOO‖² (up to the 1/(count−1) that cosines ignore)
	lp := p.sp         // ⟨LOO, prev⟩
	var vp float64
	if prev != nil {
		vp = dot(v, prev)
	}
	if p.members[i] {
		lo = vs - vv
		ll = p.ss - 2*vs + vv
		lp = p.sp - vp
	}
	r := relation{peerCos: cosine(lo, vv, ll), prevCos: math.NaN(), now: math.NaN(), before: math.NaN()}
	if prev == nil {
		return r
	}
	r.prevCos = cosine(vp, vv, pp)
	g := cosine(lp, ll, pp)
	if det := 1 - g*g; det > 1e-3 && vv > 0 {
		// Δ/‖Δ‖ ≈ a·u + b·p for unit u (others' mean) and p (previous
		// average): normal equations [1 g; g 1][a b]ᵀ = [cos_u cos_p]ᵀ.
		r.now = (r.peerCos - g*r.prevCos) / det
		r.before = (r.prevCos - g*r.peerCos) / det
	}
	return r
}

// median of the values, NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
