package progress

import (
	"math"
	"time"
)

// Never is EstimateReady's answer when the swarm makes no progress toward
// the target.
const Never = time.Duration(math.MaxInt64)

// Accumulated returns the swarm's samples for epoch at now and the swarm's
// rate: over the live peers at epoch, each peer's Samples extrapolated at
// its SamplesPerSec from the report's Time to now (hivemind's
// ProgressTracker estimate), and the sum of the rates. A report dated ahead
// of now is taken as sent now.
func (t *Tracker) Accumulated(now time.Duration, epoch uint64) (samples, perSec float64) {
	for _, r := range t.at(now, epoch) {
		elapsed := max(t.age(now, r), 0).Seconds()
		samples += float64(r.Samples) + float64(r.SamplesPerSec*elapsed) // float64(): no FMA on arm64, peers of every architecture agree
		perSec += r.SamplesPerSec
	}
	return samples, perSec
}

// Ready reports whether the swarm's accumulated samples for epoch reach
// Config.TargetSamples at now; always false when TargetSamples is 0.
func (t *Tracker) Ready(now time.Duration, epoch uint64) bool {
	if t.cfg.TargetSamples == 0 {
		return false
	}
	samples, _ := t.Accumulated(now, epoch)
	return samples >= float64(t.cfg.TargetSamples)
}

// EstimateReady returns when, on the caller's clock, the swarm's samples
// for epoch will reach Config.TargetSamples if every live peer at epoch
// keeps its reported rate: now when Ready, otherwise now plus what is left
// over the summed rate. It returns Never when TargetSamples is 0, when no
// live peer at epoch is training, or when the answer does not fit a
// time.Duration. The estimate assumes the peers stay live; a peer expiring
// takes its samples with it, so callers re-ask as reports arrive.
func (t *Tracker) EstimateReady(now time.Duration, epoch uint64) time.Duration {
	if t.cfg.TargetSamples == 0 {
		return Never
	}
	samples, perSec := t.Accumulated(now, epoch)
	left := float64(t.cfg.TargetSamples) - samples
	if left <= 0 {
		return now
	}
	if perSec <= 0 {
		return Never
	}
	wait := math.Ceil(left / perSec * float64(time.Second))
	if !(wait < float64(Never/2)) { // over a century: no estimate
		return Never
	}
	d := time.Duration(wait)
	if now > Never-d {
		return Never
	}
	return now + d
}
