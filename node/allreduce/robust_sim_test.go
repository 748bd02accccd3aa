package allreduce

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// lsqProblem is a least-squares model problem: peer i holds rows A_i and
// targets b_i = A_i·w* + noise, and the loss at w is the mean squared
// residual over every honest peer's rows.
type lsqProblem struct {
	d, rows int
	a       [][][]float64 // [peer][row][d]
	b       [][]float64   // [peer][row]
}

func newLSQ(rng *rand.Rand, peers, d, rows int) *lsqProblem {
	p := &lsqProblem{d: d, rows: rows}
	wStar := make([]float64, d)
	for j := range wStar {
		wStar[j] = rng.NormFloat64()
	}
	for range peers {
		var a [][]float64
		var b []float64
		for range rows {
			row := make([]float64, d)
			var y float64
			for j := range row {
				row[j] = rng.NormFloat64()
				y += row[j] * wStar[j]
			}
			a = append(a, row)
			b = append(b, y+0.1*rng.NormFloat64())
		}
		p.a, p.b = append(p.a, a), append(p.b, b)
	}
	return p
}

// grad is peer i's gradient of its mean squared residual at w.
func (p *lsqProblem) grad(i int, w []float64) []float32 {
	g := make([]float64, p.d)
	for r, row := range p.a[i] {
		var res float64
		for j, x := range row {
			res += x * w[j]
		}
		res -= p.b[i][r]
		for j, x := range row {
			g[j] += 2 * res * x / float64(p.rows)
		}
	}
	out := make([]float32, p.d)
	for j := range g {
		out[j] = float32(g[j])
	}
	return out
}

// loss is the mean squared residual over the peers in honest.
func (p *lsqProblem) loss(w []float64, honest []int) float64 {
	var s float64
	for _, i := range honest {
		for r, row := range p.a[i] {
			var res float64
			for j, x := range row {
				res += x * w[j]
			}
			res -= p.b[i][r]
			s += res * res
		}
	}
	return s / float64(len(honest)*p.rows)
}

// robustRun trains the problem with peers, the first f of them attacking,
// in groups of group peers per step (reshuffled every step) whose owners
// combine by rule, then the groups' results combined by rule again (the
// delegates' round, led by each group's lowest-index member); it returns
// the final loss on the honest peers' data. With bounded, a contribution
// claiming more than one peer's samples (1) is left out, as matchmaking
// refuses an announcement above the run's MaxWeight. Under the attack
// "lying_reducer" the attackers contribute honestly but, owning a span of
// a round (each member of a round owns an equal span), send the others
// the sign-flipped ×10 result on it; with checked, every member sees the
// lie (swarm.check_owners recomputes a sample of every span): the round
// is dropped (a group's, so its mean is left out of the step; the
// delegates', so the step is not taken) and the liar is left out of
// groups for 16 steps.
func robustRun(p *lsqProblem, peers, f, group, steps int, rule Aggregation, bounded bool, attack string, checked bool, seed uint64) float64 {
	rng := rand.New(rand.NewPCG(seed, 7))
	w := make([]float64, p.d)
	honest := make([]int, 0, peers-f)
	for i := f; i < peers; i++ {
		honest = append(honest, i)
	}
	const lr = 0.05
	distrusted := map[int]int{} // liar → the last step it is left out
	for step := range steps {
		vecs := make([][]float32, peers)
		weights := make([]float64, peers)
		for i := range vecs {
			vecs[i], weights[i] = p.grad(i, w), 1
		}
		if f > 0 && attack != "lying_reducer" {
			attackVectors(rng, vecs, weights, f, attack)
		}
		var order []int
		for _, i := range rng.Perm(peers) {
			if distrusted[i] < step || distrusted[i] == 0 {
				order = append(order, i)
			}
		}
		var means [][]float32
		var meanW []float64
		var leads []int
		for g := 0; g < len(order); g += group {
			idx := order[g:min(g+group, len(order))]
			var vs [][]float32
			var ws []float64
			for _, i := range idx {
				if !bounded || weights[i] <= 1 {
					vs, ws = append(vs, vecs[i]), append(ws, weights[i])
				}
			}
			out := make([]float32, p.d)
			a := aggregator{rule: rule}
			a.combine(out, vs, 0, ws)
			if attack == "lying_reducer" && lie(out, idx, f, checked, distrusted, step) {
				continue
			}
			var total float64
			for _, x := range ws {
				total += x
			}
			means, meanW, leads = append(means, out), append(meanW, total), append(leads, slices.Min(idx))
		}
		if len(means) == 0 {
			continue
		}
		out := make([]float32, p.d)
		a := aggregator{rule: rule}
		a.combine(out, means, 0, meanW)
		if attack == "lying_reducer" && lie(out, leads, f, checked, distrusted, step) {
			continue
		}
		for j := range w {
			w[j] -= lr * float64(out[j])
		}
	}
	return p.loss(w, honest)
}

// lie plays a lying_reducer round among members (the first f peers are
// liars), whose result is out and each of whom owns an equal span of it:
// a liar flips its span ×−10. With checked the lie is seen, the liars are
// left out of groups for 16 steps and lie reports the round dropped.
func lie(out []float32, members []int, f int, checked bool, distrusted map[int]int, step int) bool {
	caught := false
	for k, i := range members {
		if i >= f {
			continue
		}
		if checked {
			distrusted[i], caught = step+16, true
			continue
		}
		lo, hi := k*len(out)/len(members), (k+1)*len(out)/len(members)
		for j := lo; j < hi; j++ {
			out[j] *= -10
		}
	}
	return caught
}

// attackVectors replaces the first f peers' vectors (and weights) with the
// attack's.
func attackVectors(rng *rand.Rand, vecs [][]float32, weights []float64, f int, attack string) {
	d := len(vecs[0])
	switch attack {
	case "sign_flip":
		for i := range f {
			for j := range vecs[i] {
				vecs[i][j] *= -10
			}
		}
	case "random":
		for i := range f {
			for j := range vecs[i] {
				vecs[i][j] = float32(100 * rng.NormFloat64())
			}
		}
	case "inflated":
		for i := range f {
			weights[i] = 1e6
			for j := range vecs[i] {
				vecs[i][j] *= -1
			}
		}
	case "alie":
		// "A little is enough" (Baruch et al. 2019): every attacker sends
		// the honest mean shifted by z standard deviations per coordinate,
		// z the largest that the majority's order statistics still hide:
		// s = ⌊n/2+1⌋ − f supporters needed, z = Φ⁻¹((n−s)/n).
		n := len(vecs)
		s := n/2 + 1 - f
		z := normQuantile(float64(n-s) / float64(n))
		for j := range d {
			var m, m2 float64
			for i := f; i < n; i++ {
				x := float64(vecs[i][j])
				m += x
				m2 += x * x
			}
			m /= float64(n - f)
			sd := math.Sqrt(max(m2/float64(n-f)-m*m, 0))
			for i := range f {
				vecs[i][j] = float32(m - z*sd)
			}
		}
	}
}

// normQuantile is the standard normal's quantile function (bisection on
// math.Erf: exact enough for an attack's z).
func normQuantile(p float64) float64 {
	lo, hi := -10.0, 10.0
	for range 100 {
		mid := (lo + hi) / 2
		if 0.5*(1+math.Erf(mid/math.Sqrt2)) < p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// TestRobustAggregationModelProblem measures issue 17's model problem for
// the attacks robust aggregation and the weight bound answer: 100 peers
// train a least-squares problem (32 parameters) with SGD, averaging in
// groups of 10 and then across groups, 20 of them attacking (sign flip
// ×10, random values of norm ~570, ALIE, a sign-flipped gradient claiming
// a million samples). It logs the final losses as multiples of the clean
// run's (no attackers, plain mean) and checks each against what this
// test measured, with headroom: the plain mean is driven 10^3 to 10^12
// times off by all but ALIE; the weight bound alone answers the inflated
// claim; centered_clip stays within 5% under random values and 7% under
// ALIE, but 1.7× under the persistent sign flip, the bias a robust rule
// keeps on peers with heterogeneous data (issue 17's target of 5% is not
// met for it). Lying reducers (20 peers that sign-flip ×10 the spans they
// own) drive either rule 10^18 times off unchecked, and owner checks keep
// the loss within 5% of the clean run's.
func TestRobustAggregationModelProblem(t *testing.T) {
	const peers, f, group, steps = 100, 20, 10, 60
	p := newLSQ(rand.New(rand.NewPCG(11, 12)), peers, 32, 20)
	clean := robustRun(p, peers, 0, group, steps, Mean, true, "", false, 1)
	var table []string
	table = append(table, fmt.Sprintf("clean run (plain mean): loss %.4g", clean))
	attacks := []string{"sign_flip", "random", "alie", "inflated"}
	for _, c := range []struct {
		rule    Aggregation
		bounded bool
		// want bounds the loss ratio under each attack (0: not checked):
		// what this run measured, with headroom.
		want map[string]float64
	}{
		{Mean, false, nil},
		{Mean, true, map[string]float64{"inflated": 1.05}},
		{TrimmedMean, true, map[string]float64{"sign_flip": 8, "random": 4, "alie": 1.5, "inflated": 1.05}},
		{CenteredClip, true, map[string]float64{"sign_flip": 3, "random": 1.05, "alie": 1.2, "inflated": 1.05}},
	} {
		name := c.rule.String()
		if c.bounded {
			name += "+bound"
		}
		row := []string{fmt.Sprintf("%-19s", name)}
		for _, atk := range attacks {
			ratio := robustRun(p, peers, f, group, steps, c.rule, c.bounded, atk, false, 1) / clean
			row = append(row, fmt.Sprintf("%s %.3g×", atk, ratio))
			if w := c.want[atk]; w > 0 && !(ratio <= w) {
				t.Errorf("%s under %s: loss %.3g× the clean run's, want at most %g×", name, atk, ratio, w)
			}
		}
		table = append(table, strings.Join(row, "  "))
	}
	// A lying reducer: robust rules do not see it (it lies after
	// combining); the owner checks do.
	for _, rule := range []Aggregation{Mean, CenteredClip} {
		off := robustRun(p, peers, f, group, steps, rule, true, "lying_reducer", false, 1) / clean
		on := robustRun(p, peers, f, group, steps, rule, true, "lying_reducer", true, 1) / clean
		table = append(table, fmt.Sprintf("%-19s lying_reducer %.3g× unchecked, %.3g× with owner checks", rule, off, on))
		if !(on <= 1.05) {
			t.Errorf("%v, lying reducers, owners checked: loss %.3g× the clean run's, want within 5%%", rule, on)
		}
		if !(off > 10) {
			t.Errorf("%v, lying reducers unchecked: loss only %.3g× the clean run's: the attack tests nothing", rule, off)
		}
	}
	t.Log("\n" + strings.Join(table, "\n"))
}
