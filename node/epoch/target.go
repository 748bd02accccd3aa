package epoch

import (
	"time"

	"github.com/dtrain-dev/dtrain/node/progress"
)

// OthersProgress is what the other live peers at this peer's epoch have
// trained of it, as their reports say at now: their samples, each
// extrapolated at its reported rate from the report's time to now
// (progress.Tracker.Accumulated's estimate), and the sum of their rates.
// With its own exact count added, it is the peer's estimate of the swarm's
// samples for the epoch: in gradients mode a peer stops accumulating once
// that reaches the swarm's target batch.
func (m *Machine) OthersProgress(now time.Duration) (samples, perSec float64) {
	m.tracker.Each(now, func(r progress.Report) {
		if r.Epoch != m.epoch || r.Peer == m.cfg.Self {
			return
		}
		elapsed := max(now-time.Duration(r.Time)*time.Millisecond, 0).Seconds()
		samples += float64(r.Samples) + float64(r.SamplesPerSec*elapsed) // float64(): no FMA on arm64
		perSec += r.SamplesPerSec
	})
	return samples, perSec
}

// nextReport is when the peer sends its next report: a Heartbeat after
// its last one, or sooner while it trains toward a target batch, from two
// heartbeats before the swarm's samples reach the target at the rates
// known at the last report, an eighth of a heartbeat apart. Peers then
// stop within a fraction of a heartbeat of the target rather than up to a
// heartbeat past it; hivemind's progress tracker shortens its refresh
// period near the target the same way.
func (m *Machine) nextReport() time.Duration {
	next := m.published + m.cfg.Heartbeat
	if m.cfg.TargetSamples == 0 || m.phase != Training {
		return next
	}
	fast := m.published + m.cfg.Heartbeat/8
	others, perSec := m.OthersProgress(m.published)
	left := float64(m.cfg.TargetSamples) - others - float64(m.samples)
	if left <= 0 {
		return fast
	}
	rate := perSec + m.rate
	if !(rate > 0) || left/rate >= 3*m.cfg.Heartbeat.Seconds() {
		return next
	}
	eta := m.published + time.Duration(left/rate*float64(time.Second))
	return min(next, max(fast, eta-2*m.cfg.Heartbeat))
}
