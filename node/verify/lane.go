package verify

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/torch"
)

// windows are single sequences (B = 1) to evaluate one by one, so that
// each has its own loss for the lane test's variance.
type windows []torch.Batch

// rowOf returns row r of b as a batch of its own (sharing b's memory).
func rowOf(b torch.Batch, r int) torch.Batch {
	return torch.Batch{B: 1, T: b.T, X: b.X[r*b.T : (r+1)*b.T], Y: b.Y[r*b.T : (r+1)*b.T]}
}

// fetch returns the windows at the given sample indices of a source of
// micro-batches of micro samples, fetching each micro-batch once.
func fetch(src func(k int) (torch.Batch, error), micro int, idx []int64) (windows, error) {
	out := make(windows, len(idx))
	got := map[int64]torch.Batch{}
	for i, s := range idx {
		k, r := s/int64(micro), int(s%int64(micro))
		b, ok := got[k]
		if !ok {
			var err error
			if b, err = src(int(k)); err != nil {
				return nil, fmt.Errorf("micro-batch %d: %w", k, err)
			}
			if b.B != micro || b.T < 1 || len(b.X) != b.B*b.T || len(b.Y) != b.B*b.T {
				return nil, fmt.Errorf("micro-batch %d holds %d×%d, want %d rows", k, b.B, b.T, micro)
			}
			got[k] = b
		}
		out[i] = rowOf(b, r)
	}
	return out, nil
}

// sampleRange draws n distinct integers of [lo, hi) (all of them if
// fewer), in increasing order, with Floyd's algorithm (Bentley & Floyd,
// "Programming pearls: a sample of brilliance", CACM 1987).
func sampleRange(r *rng, lo, hi int64, n int) []int64 {
	size := hi - lo
	if size <= 0 {
		return nil
	}
	if int64(n) >= size {
		out := make([]int64, size)
		for i := range out {
			out[i] = lo + int64(i)
		}
		return out
	}
	seen := make(map[int64]bool, n)
	out := make([]int64, 0, n)
	for j := size - int64(n); j < size; j++ {
		t := int64(r.below(uint64(j + 1)))
		if seen[t] {
			t = j
		}
		seen[t] = true
		out = append(out, lo+t)
	}
	slices.Sort(out)
	return out
}

// rng is splitmix64 in counter mode.
type rng struct{ state uint64 }

// newRNG keys a generator by the validator's seed, the epoch and the
// miner, so that its draws differ for each and a miner cannot know them.
func newRNG(seed, epoch uint64, miner string) *rng {
	h := sha256.New()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], seed)
	binary.LittleEndian.PutUint64(b[8:], epoch)
	h.Write([]byte("dtrain/verify/v1\x00"))
	h.Write(b[:])
	h.Write([]byte(miner))
	return &rng{binary.LittleEndian.Uint64(h.Sum(nil))}
}

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	return data.SplitMix64(r.state)
}

// below returns a uniform integer in [0, n) (Lemire's multiply-shift; the
// bias, under n/2^64, does not matter here).
func (r *rng) below(n uint64) uint64 {
	hi, _ := bits.Mul64(r.next(), n)
	return hi
}

// losses evaluates each window's mean next-token loss at params.
func (v *Verifier) losses(params []float32, ws windows, cost *Cost) ([]float64, error) {
	if err := v.model.SetParams(params); err != nil {
		return nil, err
	}
	out := make([]float64, len(ws))
	for i, w := range ws {
		s, n, err := v.model.EvalLoss(w)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("window %d has no counted targets", i)
		}
		out[i] = s / float64(n)
		cost.Forwards++
		cost.Tokens += int64(w.B * w.T)
	}
	return out, nil
}

// welch is the t statistic of mean(a) − mean(b) with unequal variances
// (Welch 1947); ±Inf when both samples are constant and differ, 0 when
// they are constant and equal.
func welch(a, b []float64) float64 {
	ma, va := meanVar(a)
	mb, vb := meanVar(b)
	se := math.Sqrt(va/float64(len(a)) + vb/float64(len(b)))
	switch {
	case se > 0:
		return (ma - mb) / se
	case ma > mb:
		return math.Inf(1)
	case ma < mb:
		return math.Inf(-1)
	}
	return 0
}

// meanVar returns the mean and the unbiased variance (0 for one value).
func meanVar(x []float64) (float64, float64) {
	var m float64
	for _, v := range x {
		m += v
	}
	m /= float64(len(x))
	if len(x) < 2 {
		return m, 0
	}
	var s float64
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return m, s / float64(len(x)-1)
}

func average(x []float64) float64 {
	m, _ := meanVar(x)
	return m
}

// laneTests runs the lane test for every update no vector check caught,
// and returns the cost the tests shared.
//
// For update Δ_i the comparison is C_i = c_i·M, its projection on the mean
// M of the epoch's updates that passed the vector checks (c_i =
// ⟨Δ_i, M⟩/‖M‖²; C_i = 0 without M). Every window w gets
// d_w = L_w(θ−C_i) − L_w(θ−Δ_i): how much more Δ_i lowers w's loss than the
// part of it that every miner's update shares. That part is most of what
// makes one window gain more than another under any update (its
// difficulty, its distance from what the model knows), so pairing the two
// on each window removes most of the variance of Templar's unpaired
// before/after differences, and what is left is the miner's own part,
// where what it fit of its own data lives. The statistic of each half of
// the claimed samples is Welch's t of d over that half's windows against
// d over the reference windows: an update trained on its lane fits those
// windows better than windows nobody trained on.
func (a *audit) laneTests(mean []float32) (Cost, error) {
	v, ep, cfg := a.v, a.ep, a.v.cfg
	var shared Cost
	ref, err := referenceWindows(ep, cfg.RefWindows)
	if err != nil {
		return shared, err
	}
	refStart, err := v.losses(ep.Start, ref, &shared)
	if err != nil {
		return shared, err
	}
	if !allFinite(refStart) {
		return shared, fmt.Errorf("verify: the start's loss on the reference windows is not finite")
	}
	startMean := average(refStart)
	var mm float64
	if mean != nil {
		mm = dot(mean, mean)
	}
	after, comp := make([]float32, a.n), make([]float32, a.n)
	for i, u := range a.ups {
		if a.reason[i] != "" {
			continue
		}
		own, err := a.ownWindows(i)
		if err != nil {
			a.out[i].Err = err
			continue
		}
		if own[0] == nil {
			continue // too few claimed samples to split in halves
		}
		cost := &a.out[i].Evidence.Cost
		n0 := len(own[0])
		all := append(append(append(windows{}, ref...), own[0]...), own[1]...)
		lossAfter, err := v.losses(subtract(ep.Start, u.Vector, after), all, cost)
		if err != nil {
			return shared, err
		}
		if !allFinite(lossAfter) {
			// Within AdamW's bound this should not happen; an update that
			// breaks the model is no training.
			a.catch(i, ReasonInvalid)
			continue
		}
		lossComp := slices.Concat(refStart, make([]float64, len(all)-len(ref)))
		if mm > 0 {
			c := float32(dot(u.Vector, mean) / mm)
			for j := range comp {
				comp[j] = ep.Start[j] - c*mean[j]
			}
			lossComp, err = v.losses(comp, all, cost)
		} else {
			// No comparison: d is the plain before/after gain.
			var rest []float64
			rest, err = v.losses(ep.Start, all[len(ref):], cost)
			copy(lossComp[len(ref):], rest)
		}
		if err != nil {
			return shared, err
		}
		if !allFinite(lossComp) {
			a.out[i].Err = fmt.Errorf("the loss of the comparison is not finite")
			continue
		}
		d := make([]float64, len(all))
		for k := range d {
			d[k] = lossComp[k] - lossAfter[k]
		}
		dRef, dOwn := d[:len(ref)], d[len(ref):]
		ev := &a.out[i].Evidence
		ev.Lane = LaneStats{All: welch(dOwn, dRef), Head: welch(dOwn[:n0], dRef), Tail: welch(dOwn[n0:], dRef)}
		a.tested[i] = true
		ev.Gain = 0
		if startMean > 0 {
			ev.Gain = (startMean - average(lossAfter[:len(ref)])) / startMean
		}
	}
	return shared, nil
}

func allFinite(x []float64) bool {
	for _, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// ownWindows draws HeadWindows and TailWindows windows from the two halves
// of the tested part of update i's claimed samples, or returns nil when a
// half holds fewer than two. The tested part leaves out the samples of the last ⌊1/(1−β1)⌋
// claimed steps (at most half of them): AdamW's first moment spreads a
// step's gradient over the steps after it, 1 − β1^r of it applied r steps
// later, so the last ones have moved the parameters only part of the way
// when the epoch ends. That is 10 steps at GPT-2's β1 = 0.9: 2% of an
// epoch of 500 inner steps.
func (a *audit) ownWindows(i int) ([2]windows, error) {
	u, cfg, ep := a.ups[i], a.v.cfg, a.ep
	var out [2]windows
	steps := ep.steps(u.Samples)
	lag := 0
	if b1 := ep.AdamW.Beta1; b1 > 0 && b1 < 1 {
		lag = min(int(1/(1-b1)), steps/2)
	}
	tested := min(u.Samples, int64(steps-lag)*int64(ep.MicroBatch)*int64(ep.Accum))
	half := tested / 2
	if half < 2 {
		return out, nil
	}
	r := newRNG(cfg.Seed, ep.Number, u.Miner)
	for h, lo := range []int64{0, half} {
		hi := lo + half
		if h == 1 {
			hi = tested
		}
		ws, err := fetch(u.Batches, ep.MicroBatch, sampleRange(r, lo, hi, []int{cfg.HeadWindows, cfg.TailWindows}[h]))
		if err != nil {
			return out, fmt.Errorf("recompute the batches of %s: %w", u.Miner, err)
		}
		out[h] = ws
	}
	return out, nil
}

// referenceWindows takes n windows from the epoch's reference batches.
func referenceWindows(ep Epoch, n int) (windows, error) {
	var out windows
	for k := 0; len(out) < n; k++ {
		b, err := ep.Reference(k)
		if err != nil {
			return nil, fmt.Errorf("verify: reference batch %d: %w", k, err)
		}
		if b.B < 1 || len(b.X) != b.B*b.T || len(b.Y) != b.B*b.T {
			return nil, fmt.Errorf("verify: reference batch %d holds %d×%d", k, b.B, b.T)
		}
		for r := 0; r < b.B && len(out) < n; r++ {
			out = append(out, rowOf(b, r))
		}
	}
	return out, nil
}

// subtract writes a − b into dst and returns it.
func subtract(a, b, dst []float32) []float32 {
	for j := range dst {
		dst[j] = a[j] - b[j]
	}
	return dst
}
