package validator

import (
	"context"
	"math"
	"slices"

	"github.com/dtrain-dev/dtrain/node/score"
)

// Audit is one miner's contribution to one epoch's average, fetched and
// checked against the root its group agreed on: Update is exactly the
// values that entered the average (after the round's codec), Weight the
// samples it claimed.
type Audit struct {
	Epoch  uint64
	Miner  string
	Weight float64
	Update []float32
}

// Verifier checks the audited contributions of one round and returns a
// verdict per miner it could judge. Audits of one call are the same group
// and epoch, so a check may compare them with each other. A check that
// waits (for the epoch's state) stops waiting when ctx ends.
type Verifier interface {
	Verify(ctx context.Context, audits []Audit) []score.Verdict
}

// NormCheck is the built-in Verifier: it catches what needs no model.
// An update with a non-finite value or none but zeros is a Cheat; so is
// one whose L2 norm per claimed sample is over OutlierRatio times the
// median of the others' (an update scaled up, or random values of
// implausible size: per sample, since a miner that trained fewer steps,
// stopping when the others were ready, moved less), judged only against
// two or more others that are finite, not zero and claim samples (a zero
// update among three would halve the median and make an honest miner an
// outlier); two audits with bitwise-equal updates are both Cheats (a copy:
// honest miners train on different lanes and dropout seeds). Anything
// else is Inconclusive: a norm says nothing about whether the work was
// done, which is WorkCheck's.
type NormCheck struct {
	// OutlierRatio is the ratio to the median norm per sample above which
	// an update is a cheat; 0 means 4.
	OutlierRatio float64
}

// Verify implements Verifier.
func (c NormCheck) Verify(_ context.Context, audits []Audit) []score.Verdict {
	ratio := c.OutlierRatio
	if ratio <= 0 {
		ratio = 4
	}
	norms := make([]float64, len(audits))
	perSample := make([]float64, len(audits))
	valid := make([]bool, len(audits))
	nValid := 0
	for i, a := range audits {
		norms[i] = l2(a.Update)
		if valid[i] = norms[i] > 0 && !math.IsInf(norms[i], 0) && a.Weight > 0; valid[i] {
			perSample[i] = norms[i] / a.Weight
			nValid++
		}
	}
	out := make([]score.Verdict, len(audits))
	for i, a := range audits {
		out[i] = score.Verdict{Epoch: a.Epoch, Miner: a.Miner, Kind: score.Inconclusive}
		switch {
		case math.IsNaN(norms[i]) || math.IsInf(norms[i], 0):
			out[i].Kind, out[i].Reason = score.Cheat, "non-finite update"
		case norms[i] == 0:
			out[i].Kind, out[i].Reason = score.Cheat, "zero update"
		case valid[i] && nValid >= 3 && perSample[i] > ratio*medianOthers(perSample, valid, i):
			out[i].Kind, out[i].Reason = score.Cheat, "update norm per sample far above the group's"
		}
		for j := range audits {
			if j != i && norms[i] != 0 && norms[i] == norms[j] && slices.Equal(a.Update, audits[j].Update) {
				out[i].Kind, out[i].Reason = score.Cheat, "copy of another miner's update"
			}
		}
	}
	return out
}

// l2 is the Euclidean norm, +Inf or NaN when a value is not finite.
func l2(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

// medianOthers is the median of the xs[j] with valid[j], j ≠ i.
func medianOthers(xs []float64, valid []bool, i int) float64 {
	var o []float64
	for j, x := range xs {
		if j != i && valid[j] {
			o = append(o, x)
		}
	}
	slices.Sort(o)
	n := len(o)
	if n%2 == 1 {
		return o[n/2]
	}
	return (o[n/2-1] + o[n/2]) / 2
}
