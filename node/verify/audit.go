package verify

import (
	"fmt"
	"math"

	"github.com/dtrain-dev/dtrain/node/score"
)

// Audit checks the updates of epoch ep, one per audited miner, and returns
// an outcome for each, in order, and the evaluation cost the audits shared
// (the reference windows). The updates are judged together: each is
// compared with the others (copies, direction), so a validator audits a
// sample of an epoch's miners in one call, and should audit at least three
// for the comparisons to run. An error is the validator's own failure
// (a bad Epoch, the model, the reference data), never a miner's: a miner's
// bad vector is a Cheat, and a failure to recompute its batches makes its
// outcome Inconclusive with Outcome.Err set.
func (v *Verifier) Audit(ep Epoch, ups []Update) ([]Outcome, Cost, error) {
	n := int(v.model.NumParams())
	if err := ep.check(n); err != nil {
		return nil, Cost{}, err
	}
	seen := map[string]bool{}
	for _, u := range ups {
		if seen[u.Miner] || u.Batches == nil {
			return nil, Cost{}, fmt.Errorf("%w: miner %q twice or without batches", ErrBadEpoch, u.Miner)
		}
		seen[u.Miner] = true
	}
	a := &audit{v: v, ep: ep, ups: ups, n: n,
		out:    make([]Outcome, len(ups)),
		reason: make([]string, len(ups)),
		valid:  make([]bool, len(ups)),
		norm2:  make([]float64, len(ups)),
		sk:     make([]sketch, len(ups)),
		copyOf: make([]int, len(ups)),
		tested: make([]bool, len(ups)),
	}
	for i := range ups {
		a.out[i].Evidence = blankEvidence()
		a.copyOf[i] = -1
	}
	a.vectorChecks()
	a.sketchChecks()
	mean := a.peerChecks()
	shared, err := a.laneTests(mean)
	if err != nil {
		return nil, Cost{}, err
	}
	a.decide()
	var prev sketch
	if ep.PrevMean != nil {
		prev = newSketch(ep.PrevMean, v.cfg.SketchDim, v.cfg.Seed)
	}
	ids := make([]string, len(ups))
	for i, u := range ups {
		ids[i] = u.Miner
	}
	v.history.remember(ep.Number, ids, a.sk, prev)
	return a.out, shared, nil
}

// audit is one call of Audit in progress.
type audit struct {
	v   *Verifier
	ep  Epoch
	ups []Update
	n   int
	out []Outcome

	reason []string  // a cheat found by a vector check, "" if none
	valid  []bool    // the vector has the model's length and is finite
	norm2  []float64 // ‖Δ‖²
	sk     []sketch
	copyOf []int  // the update this one nearly equals, -1 if none
	tested []bool // the lane test ran
}

func blankEvidence() Evidence {
	nan := math.NaN()
	return Evidence{Norm: nan, Bound: nan, PeerCos: nan, PrevCos: nan, Now: nan, Prev: nan,
		Closest: math.Inf(-1), PastCos: math.Inf(-1), Replay: -1, Lane: LaneStats{nan, nan, nan}, LaneMean: LaneStats{nan, nan, nan}, Power: LaneStats{nan, nan, nan}, Gain: nan}
}

func (a *audit) catch(i int, reason string) {
	if a.reason[i] == "" {
		a.reason[i] = reason
	}
}

// vectorChecks runs what needs one update alone: shape, claim, zero,
// AdamW's bound, an echo of the previous average.
func (a *audit) vectorChecks() {
	ep, cfg := a.ep, a.v.cfg
	var pp float64
	if ep.PrevMean != nil {
		pp = dot(ep.PrevMean, ep.PrevMean)
	}
	for i, u := range a.ups {
		ev := &a.out[i].Evidence
		if len(u.Vector) != a.n || firstNonFinite(u.Vector) >= 0 {
			a.catch(i, ReasonInvalid)
			continue
		}
		a.valid[i] = true
		a.norm2[i] = dot(u.Vector, u.Vector)
		ev.Norm = math.Sqrt(a.norm2[i])
		if u.Samples < 1 || u.Samples > ep.maxSamples() {
			a.catch(i, ReasonSamples)
			continue
		}
		if a.norm2[i] == 0 {
			a.catch(i, ReasonZero)
			continue
		}
		lrs := ep.LR[:ep.steps(u.Samples)]
		ev.Bound = boundRatio(u.Vector, ep.Start, a.v.decay, lrs, ep.AdamW.Beta1, ep.AdamW.Beta2, ep.AdamW.WeightDecay)
		if ev.Bound > cfg.BoundSlack {
			a.catch(i, ReasonBound)
		}
		if ep.PrevMean != nil {
			ev.PrevCos = cosine(dot(u.Vector, ep.PrevMean), a.norm2[i], pp)
			if ev.PrevCos > cfg.CopyCos {
				a.catch(i, ReasonEcho)
			}
		}
	}
}

// sketchChecks sketches every valid update, finds replays of earlier
// epochs' updates and averages, and pairs of nearly equal updates.
func (a *audit) sketchChecks() {
	cfg := a.v.cfg
	for i, u := range a.ups {
		if !a.valid[i] {
			continue
		}
		a.sk[i] = newSketch(u.Vector, cfg.SketchDim, cfg.Seed)
		ev := &a.out[i].Evidence
		if ev.PastCos, ev.Replay = a.v.history.replays(a.ep.Number, a.sk[i]); ev.Replay >= 0 {
			a.catch(i, ReasonReplay)
		}
	}
	for i := range a.ups {
		for j := i + 1; j < len(a.ups); j++ {
			if a.sk[i] == nil || a.sk[j] == nil {
				continue
			}
			// The sketch finds candidates in O(SketchDim); the exact
			// cosine, one pass over both vectors, confirms them.
			sc := a.sk[i].cos(a.sk[j])
			a.out[i].Evidence.Closest = max(a.out[i].Evidence.Closest, sc)
			a.out[j].Evidence.Closest = max(a.out[j].Evidence.Closest, sc)
			if sc <= cfg.CopyCos-0.05 {
				continue
			}
			c := cosine(dot(a.ups[i].Vector, a.ups[j].Vector), a.norm2[i], a.norm2[j])
			if c > cfg.CopyCos {
				if a.copyOf[i] < 0 {
					a.copyOf[i] = j
				}
				if a.copyOf[j] < 0 {
					a.copyOf[j] = i
				}
			}
		}
	}
	for i, j := range a.copyOf {
		if j >= 0 {
			a.out[i].Evidence.Copy = a.ups[j].Miner
		}
	}
}

// peerChecks compares each update with the mean of the others that passed
// the vector checks: unrelated to it, it is not training on this model;
// closer to the previous average than to it, it is stale. It returns the
// mean of the updates that passed, the lane test's comparison, or nil
// when fewer than three did.
func (a *audit) peerChecks() []float32 {
	ep, cfg := a.ep, a.v.cfg
	var pp float64
	if ep.PrevMean != nil {
		pp = dot(ep.PrevMean, ep.PrevMean)
	}
	in := make([]bool, len(a.ups))
	for i := range in {
		in[i] = a.valid[i] && a.reason[i] == ""
	}
	first := newPool(vectors(a.ups), in, ep.PrevMean, a.n)
	rel := make([]relation, len(a.ups))
	var cos []float64
	for i, u := range a.ups {
		if in[i] && first.others(i) >= 2 {
			rel[i] = first.relate(i, u.Vector, ep.PrevMean, a.norm2[i], pp)
			cos = append(cos, rel[i].peerCos)
		}
	}
	// A relative threshold: how far apart honest updates point depends on
	// the model, its stage of training and the inner steps, while an
	// update that is not training on this model (noise) has a cosine of
	// about 1/√n with anything.
	rootN := math.Sqrt(float64(a.n))
	if med := median(cos); med > 0 {
		for i := range a.ups {
			if !in[i] || first.others(i) < 2 {
				continue
			}
			c := rel[i].peerCos
			// With fewer than UncorrelatedMinPeers others, only where the
			// epoch's updates share a direction far beyond noise (median
			// cosine 2·RandomZ/√n): in node/validator's tiny run an honest
			// epoch-0 update had a cosine of −0.0003 with the two others,
			// whose own cosines were as small.
			few := first.others(i) < cfg.UncorrelatedMinPeers
			if c < cfg.Uncorrelated*med && (!few || (math.Abs(c)*rootN < cfg.RandomZ && med*rootN >= 2*cfg.RandomZ)) {
				a.catch(i, ReasonUncorrelated)
				in[i] = false
			}
		}
	}
	second := newPool(vectors(a.ups), in, ep.PrevMean, a.n)
	for i, u := range a.ups {
		if !a.valid[i] || a.norm2[i] == 0 || second.others(i) < 2 {
			continue
		}
		r := second.relate(i, u.Vector, ep.PrevMean, a.norm2[i], pp)
		ev := &a.out[i].Evidence
		ev.PeerCos, ev.Now, ev.Prev = r.peerCos, r.now, r.before
		if a.reason[i] == "" && ep.steps(u.Samples) >= cfg.StaleMinSteps && second.others(i) >= cfg.StaleMinPeers && r.before-r.now > cfg.StaleMargin {
			a.catch(i, ReasonStale)
			in[i] = false
		}
	}
	var count int
	for _, ok := range in {
		if ok {
			count++
		}
	}
	if count < 3 {
		return nil
	}
	mean := make([]float32, a.n)
	for i, u := range a.ups {
		if in[i] {
			for j, x := range u.Vector {
				mean[j] += x
			}
		}
	}
	for j := range mean {
		mean[j] /= float32(count)
	}
	return mean
}

func vectors(ups []Update) [][]float32 {
	out := make([][]float32, len(ups))
	for i, u := range ups {
		out[i] = u.Vector
	}
	return out
}

// copyMargin is how much larger, in t, the lane statistic of one of two
// nearly equal updates must be for the other to be called the copy.
const copyMargin = 3

// decide turns each miner's checks into its verdict and records its lane
// statistics in the history.
//
// Each threshold of the lane test catches only where it has power in this
// run: where the median of its statistic over the tested updates of the
// last LaneEpochs audited epochs (Evidence.Power) sits PowerZ noise
// widths above it: a width is 1 for one audit's t statistic and
// 1/√LaneEpochs for a mean of LaneEpochs of them. An honest miner's
// statistic spreads about that median (that noise, and how much less than
// the others it fits: a slower miner, a weak epoch), while an update not
// trained on its lane scores about N(0, 1) whatever the run; a run whose
// honest miners sit near a threshold cannot tell the two apart there, and
// a catch would as likely fall on an honest miner as on a cheater. The
// median holds while most tested updates are honest.
func (a *audit) decide() {
	cfg, e := a.v.cfg, a.ep.Number
	var stats []LaneStats
	for i, ok := range a.tested {
		if ok {
			stats = append(stats, a.out[i].Evidence.Lane)
		}
	}
	pw := a.v.history.power(e, stats)
	one, mean := cfg.PowerZ, cfg.PowerZ/math.Sqrt(float64(cfg.LaneEpochs))
	powered := func(median, threshold, margin float64) bool { return median-threshold >= margin }
	for i, u := range a.ups {
		o := &a.out[i]
		o.Verdict = score.Verdict{Epoch: e, Miner: u.Miner, Kind: score.Inconclusive}
		if a.reason[i] != "" {
			o.Verdict.Kind, o.Verdict.Reason = score.Cheat, a.reason[i]
			continue
		}
		if !a.tested[i] {
			continue // the lane test could not run: Inconclusive
		}
		o.Evidence.Power = pw
		st := o.Evidence.Lane
		m, full := a.v.history.lane(u.Miner, e, st)
		if full {
			o.Evidence.LaneMean = m
		}
		reason := ""
		switch {
		case st.All < cfg.LaneFloor && powered(pw.All, cfg.LaneFloor, one) || full && m.All < cfg.AllMean && powered(pw.All, cfg.AllMean, mean):
			reason = ReasonLane
		case st.Tail < cfg.LaneFloor && powered(pw.Tail, cfg.LaneFloor, one) || full && m.Tail < cfg.TailMean && powered(pw.Tail, cfg.TailMean, mean):
			reason = ReasonTail
		case full && m.Head < cfg.HeadMean && powered(pw.Head, cfg.HeadMean, mean):
			reason = ReasonHead
		}
		// Two nearly equal updates: the one whose lane it helps is the
		// original, the other copied it. The margin keeps an original
		// with a weak statistic from being taken for the copy: under a
		// copier the statistic is about N(0, 1), so the comparison runs
		// only where honest miners' median reaches copyMargin.
		if j := a.copyOf[i]; j >= 0 {
			if reason != "" || pw.All >= copyMargin && st.All < cfg.LanePass && a.tested[j] && a.out[j].Evidence.Lane.All >= st.All+copyMargin {
				reason = ReasonCopy
			}
		}
		switch {
		case reason != "":
			o.Verdict.Kind, o.Verdict.Reason = score.Cheat, reason
		case st.All >= cfg.LanePass && st.Tail >= cfg.LanePass:
			o.Verdict.Kind = score.Pass
			o.Verdict.Quality = max(-score.MaxQuality, min(score.MaxQuality, o.Evidence.Gain))
		}
	}
}
