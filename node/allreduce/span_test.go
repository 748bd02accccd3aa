package allreduce

import (
	"errors"
	"math"
	"math/rand"
	"reflect"
	"testing"
)

// lpOptimum solves the load-balancing LP of optimalFractions independently,
// by enumerating its vertices: with m eligible members the unknowns are
// (f_1..f_m, T); a vertex is where Σf = 1 and m of the inequalities
// (-f_j ≤ 0, -T ≤ 0, c_i·f_i − b_i·T ≤ −a_i) hold with equality. The feasible
// set contains no line (f lies in the simplex, T ≥ 0) and T is bounded below,
// so the minimum is attained at a vertex.
func lpOptimum(loads []load) float64 {
	var elig []int
	col := map[int]int{}
	for i, l := range loads {
		if l.eligible {
			col[i] = len(elig)
			elig = append(elig, i)
		}
	}
	m := len(elig)
	var rows [][]float64 // each row: coefficients of (f.., T) then rhs
	for j := 0; j < m; j++ {
		r := make([]float64, m+2)
		r[j] = -1
		rows = append(rows, r)
	}
	r := make([]float64, m+2)
	r[m] = -1
	rows = append(rows, r)
	for i, l := range loads {
		if !l.limited {
			continue
		}
		r := make([]float64, m+2)
		if j, ok := col[i]; ok {
			r[j] = l.c
		}
		r[m] = -l.b
		r[m+1] = -l.a
		rows = append(rows, r)
	}
	eq := make([]float64, m+2)
	for j := 0; j < m; j++ {
		eq[j] = 1
	}
	eq[m+1] = 1
	best := math.Inf(1)
	pick := make([]int, m)
	var walk func(start, k int)
	walk = func(start, k int) {
		if k == m {
			sys := [][]float64{append([]float64(nil), eq...)}
			for _, p := range pick {
				sys = append(sys, append([]float64(nil), rows[p]...))
			}
			x, ok := solve(sys)
			if !ok {
				return
			}
			for _, row := range rows {
				var s float64
				for j := 0; j <= m; j++ {
					s += row[j] * x[j]
				}
				if s > row[m+1]+1e-9 {
					return
				}
			}
			best = math.Min(best, x[m])
			return
		}
		for p := start; p < len(rows); p++ {
			pick[k] = p
			walk(p+1, k+1)
		}
	}
	walk(0, 0)
	return best
}

// solve solves the square system given as augmented rows by Gaussian
// elimination with partial pivoting; ok is false when it is singular.
func solve(a [][]float64) ([]float64, bool) {
	n := len(a)
	for c := 0; c < n; c++ {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[p][c]) {
				p = r
			}
		}
		if math.Abs(a[p][c]) < 1e-12 {
			return nil, false
		}
		a[c], a[p] = a[p], a[c]
		for r := 0; r < n; r++ {
			if r == c {
				continue
			}
			k := a[r][c] / a[c][c]
			for j := c; j <= n; j++ {
				a[r][j] -= k * a[c][j]
			}
		}
	}
	x := make([]float64, n)
	for i := range x {
		x[i] = a[i][n] / a[i][i]
	}
	return x, true
}

// randomGroup draws a group of size members with random roles (at least one
// reducer) and bandwidths, some unmeasured and some tied.
func randomGroup(rng *rand.Rand, size int) (bw []float64, reduces, contributes []bool) {
	bw = make([]float64, size)
	reduces = make([]bool, size)
	contributes = make([]bool, size)
	tied := rng.Intn(4) == 0
	for i := range bw {
		switch rng.Intn(5) {
		case 0: // client
			contributes[i] = true
		case 1: // aux
			reduces[i] = true
		default: // full
			reduces[i], contributes[i] = true, true
		}
		switch {
		case rng.Intn(8) == 0:
			bw[i] = 0
		case tied:
			bw[i] = 100
		default:
			bw[i] = math.Exp(rng.Float64() * 5)
		}
	}
	if i := rng.Intn(size); !reduces[i] {
		reduces[i] = true
	}
	return bw, reduces, contributes
}

func TestOptimalFractionsMatchLP(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := 0; trial < 3000; trial++ {
		bw, reduces, contributes := randomGroup(rng, 1+rng.Intn(5))
		loads := groupLoad(bw, reduces, contributes)
		eligible := false
		for _, l := range loads {
			eligible = eligible || l.eligible
		}
		if !eligible {
			continue
		}
		f := optimalFractions(loads)
		var sum float64
		for i, x := range f {
			if x < 0 || (x > 0 && !loads[i].eligible) {
				t.Fatalf("bw=%v reduces=%v contributes=%v: fraction %v to member %d", bw, reduces, contributes, x, i)
			}
			sum += x
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Fatalf("fractions sum to %v", sum)
		}
		got, want := roundTime(loads, f), lpOptimum(loads)
		if math.Abs(got-want) > 1e-9*math.Max(1, want) {
			t.Fatalf("bw=%v reduces=%v contributes=%v: closed form time %v, LP optimum %v (f=%v)",
				bw, reduces, contributes, got, want, f)
		}
	}
}

func TestOptimalFractionsKnownCases(t *testing.T) {
	tests := []struct {
		name                 string
		bw                   []float64
		reduces, contributes []bool
		want                 []float64
	}{
		{"equal full members share equally", []float64{5, 5, 5, 5},
			[]bool{true, true, true, true}, []bool{true, true, true, true}, []float64{.25, .25, .25, .25}},
		// Full: 1 + f ≤ T, aux: 3f ≤ T → f_full = 0.2, f_aux = 0.4, T = 1.2.
		{"aux owns more: it sends nothing of its own", []float64{1, 1, 1, 1},
			[]bool{true, true, true, true}, []bool{true, true, true, false}, []float64{.2, .2, .2, .4}},
		// 1 + f_i ≤ T·b_i (K = 3): the slow members' own sends already take T = 1,
		// by which the fast one can take the whole vector.
		{"faster member owns more", []float64{1, 1, 2},
			[]bool{true, true, true}, []bool{true, true, true}, []float64{0, 0, 1}},
		// K = 2: the full members' loads do not grow with their shares, so
		// the aux member takes what keeps its 2f within T0 = 1, up to an
		// equal third (a validator among two miners owns a span).
		{"aux among two full members owns an equal share", []float64{1, 1, 1},
			[]bool{true, true, true}, []bool{true, true, false}, []float64{1. / 3, 1. / 3, 1. / 3}},
		// 2f ≤ T0·0.5 → f_aux = 0.25; the full members split the rest.
		{"slow aux among two full members owns what its link allows", []float64{1, 1, 0.5},
			[]bool{true, true, true}, []bool{true, true, false}, []float64{.375, .375, .25}},
		{"lone contributor keeps everything", []float64{1, 1},
			[]bool{true, true}, []bool{true, false}, []float64{1, 0}},
		{"unmeasured reducer gets nothing", []float64{2, 0, 2},
			[]bool{true, true, true}, []bool{true, true, true}, []float64{.5, 0, .5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loads := groupLoad(tt.bw, tt.reduces, tt.contributes)
			got := optimalFractions(loads)
			if lp := lpOptimum(loads); math.Abs(roundTime(loads, got)-lp) > 1e-12 {
				t.Fatalf("time %v, LP optimum %v", roundTime(loads, got), lp)
			}
			for i := range got {
				if math.Abs(got[i]-tt.want[i]) > 1e-12 {
					t.Fatalf("fractions %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestSpansProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for trial := 0; trial < 5000; trial++ {
		size := 1 + rng.Intn(32)
		bw, reduces, contributes := randomGroup(rng, size)
		n := rng.Intn(3 * size)
		if rng.Intn(2) == 0 {
			n = rng.Intn(1 << 20)
		}
		spans, err := SpansForRoles(n, bw, reduces, contributes)
		if err != nil {
			t.Fatal(err)
		}
		at, k := 0, 0
		counts := make([]int, size)
		measured := false
		for i := range reduces {
			measured = measured || (reduces[i] && bw[i] > 0)
		}
		for i := range reduces {
			if !reduces[i] {
				continue
			}
			s := spans[k]
			k++
			if s.Peer != i || s.Begin != at || s.End < s.Begin {
				t.Fatalf("n=%d span %d = %+v, want peer %d from %d", n, k-1, s, i, at)
			}
			if measured && bw[i] == 0 && s.Len() > 0 {
				t.Fatalf("unmeasured reducer %d owns %d elements", i, s.Len())
			}
			counts[i] = s.Len()
			at = s.End
		}
		if k != len(spans) || at != n {
			t.Fatalf("%d spans for %d reducers end at %d, want %d", len(spans), k, at, n)
		}
		if !measured || n == 0 {
			continue
		}
		loads := groupLoad(bw, reduces, contributes)
		eligible := make([]bool, size)
		var slack float64 // each fraction is off the optimum by < 1/n
		for i, l := range loads {
			eligible[i] = l.eligible
			if l.eligible {
				slack = math.Max(slack, math.Abs(l.c)/l.b/float64(n))
			}
		}
		got := roundTime(loads, fractions(counts, n))
		opt := roundTime(loads, optimalFractions(loads))
		equal := roundTime(loads, fractions(equalCounts(n, eligible), n))
		if got > opt+slack+1e-9 {
			t.Fatalf("bw=%v n=%d: rounded time %v, optimum %v + rounding %v", bw, n, got, opt, slack)
		}
		if got > equal+slack+1e-9 {
			t.Fatalf("bw=%v n=%d: time %v worse than equal spans %v", bw, n, got, equal)
		}
		if opt > equal+1e-9 {
			t.Fatalf("bw=%v: optimum %v worse than equal spans %v", bw, opt, equal)
		}
	}
}

func fractions(counts []int, n int) []float64 {
	f := make([]float64, len(counts))
	for i, c := range counts {
		f[i] = float64(c) / float64(n)
	}
	return f
}

func TestSpansUnmeasuredAreEqual(t *testing.T) {
	spans, err := Spans(10, make([]float64, 5), []bool{true, false, true, true, true})
	if err != nil {
		t.Fatal(err)
	}
	want := []Span{{0, 0, 3}, {2, 3, 6}, {3, 6, 8}, {4, 8, 10}}
	if len(spans) != len(want) {
		t.Fatalf("spans %v, want %v", spans, want)
	}
	for i := range want {
		if spans[i] != want[i] {
			t.Fatalf("spans %v, want %v", spans, want)
		}
	}
}

func TestSpansBadInput(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		bw      []float64
		reduces []bool
		want    error
	}{
		{"negative length", -1, []float64{1}, []bool{true}, nil},
		{"length mismatch", 4, []float64{1, 2}, []bool{true}, nil},
		{"NaN bandwidth", 4, []float64{math.NaN()}, []bool{true}, nil},
		{"infinite bandwidth", 4, []float64{math.Inf(1)}, []bool{true}, nil},
		{"negative bandwidth", 4, []float64{-1}, []bool{true}, nil},
		{"no reducers", 4, []float64{1, 1}, []bool{false, false}, ErrNoReducers},
		{"empty group", 4, nil, nil, ErrNoReducers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spans, err := Spans(tt.n, tt.bw, tt.reduces)
			if err == nil {
				t.Fatalf("spans %v, want an error", spans)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

// TestSpansEqualBandwidthsAreEqual: with full members and clients of one
// bandwidth the LP optimum is the equal split, and rounding gives the same
// spans as the unmeasured case, remainders to the first reducers.
func TestSpansEqualBandwidthsAreEqual(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for trial := 0; trial < 500; trial++ {
		size := 1 + rng.Intn(32)
		reduces := make([]bool, size)
		bw := make([]float64, size)
		for i := range reduces {
			reduces[i] = rng.Intn(4) > 0
			bw[i] = 7
		}
		reduces[rng.Intn(size)] = true
		n := rng.Intn(4 * size)
		got, err := Spans(n, bw, reduces)
		if err != nil {
			t.Fatal(err)
		}
		want := spansFromCounts(equalCounts(n, reduces), reduces)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("n=%d reduces=%v: spans %v, want equal %v", n, reduces, got, want)
		}
	}
}
