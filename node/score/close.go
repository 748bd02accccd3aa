package score

import (
	"maps"
	"math"
	"slices"
)

// probeSample is one epoch's probes of one miner: the medians of what
// was measured (0: not measured), or failed when more probes failed than
// were answered.
type probeSample struct {
	failed   bool
	rtt      float64 // seconds
	up, down float64 // bytes/s
}

// closeThrough closes the open epochs up to e (< MaxUint64). Only the
// open window can hold observations, so a jump of many epochs costs no
// more than MaxAhead+1 closes.
func (s *Scorer) closeThrough(e uint64) {
	ids := slices.Sorted(maps.Keys(s.miners))
	for ep := s.next; ep <= e && ep-s.next <= s.cfg.MaxAhead; ep++ {
		s.closeEpoch(ep, ids)
	}
	s.next, s.closedAny = e+1, true
	s.forget(e)
}

// closeEpoch applies each miner's tally of epoch ep, in the order of ids.
func (s *Scorer) closeEpoch(ep uint64, ids []string) {
	// The passes of this epoch join the window before the median is taken,
	// so that the very first passes have a reference too.
	for _, id := range ids {
		if t := s.miners[id].closing(ep); t != nil && t.verdict == Pass && t.quality > 0 {
			s.quality.add(t.quality)
		}
	}
	ref := median(s.quality.values())
	for _, id := range ids {
		m := s.miners[id]
		if t := m.closing(ep); t != nil {
			m.apply(t, ep, ref, &s.cfg)
			t.used = false
		}
	}
}

// forget drops the miners not seen alive in EvictAfter epochs up to the
// closed epoch e.
func (s *Scorer) forget(e uint64) {
	for id, m := range s.miners {
		if m.touched <= e && m.idleSince()+s.cfg.EvictAfter <= e {
			delete(s.miners, id)
		}
	}
}

// closing returns the miner's tally of epoch ep, or nil if it has none.
func (m *miner) closing(ep uint64) *tally {
	t := &m.pending[ep%uint64(len(m.pending))]
	if !t.used || t.epoch != ep {
		return nil
	}
	return t
}

// apply folds one closed epoch's tally into the miner's state; ref is the
// median recent pass quality (NaN if none).
func (m *miner) apply(t *tally, ep uint64, ref float64, c *Config) {
	if t.alive {
		m.aliveEver, m.aliveAt = true, ep
	}
	if t.probeOK+t.fails > 0 || len(t.up) > 0 {
		m.probes.add(t.probeSample())
	}
	if n := t.onTime + t.late + t.missed; n > 0 {
		m.delivery.add((float64(t.onTime)+c.LateCredit*float64(t.late))/float64(n), c.Alpha)
		m.roundEver, m.roundAt = true, ep
	}
	switch t.verdict {
	case Cheat:
		m.strikes = min(m.strikes+1, maxStrikes)
		m.clean = 0
		m.work.add(0, c.Alpha)
	case Pass:
		if m.strikes > 0 {
			m.clean = min(m.clean+1, c.RecoveryEpochs<<maxStrikes)
		}
		m.work.add(workSample(t.quality, ref, c.WorkFloor), c.Alpha)
	}
	if t.seen {
		m.sync.add(syncScore(t.behind, c.MaxStaleness), c.Alpha)
	}
}

func (t *tally) probeSample() probeSample {
	if t.fails > t.probeOK {
		return probeSample{failed: true}
	}
	var p probeSample
	if len(t.rtt) > 0 {
		rtt := make([]float64, len(t.rtt))
		for i, d := range t.rtt {
			rtt[i] = d.Seconds()
		}
		p.rtt = median(rtt)
	}
	if len(t.up) > 0 {
		p.up = median(t.up)
	}
	if len(t.down) > 0 {
		p.down = median(t.down)
	}
	return p
}

// workSample scores a pass of quality q against the median ref: floor for
// no improvement, rising linearly to 1 at the median and capped there, so
// an inflated quality earns nothing over an ordinary one.
func workSample(q, ref, floor float64) float64 {
	ratio := 1.0 // no positive reference yet: every pass is ordinary
	if ref > 0 {
		ratio = min(1, max(0, q)/ref)
	}
	return floor + (1-floor)*ratio
}

// syncScore falls linearly from 1 in sync to 0 at maxBehind epochs behind
// (Templar's sync score, max(0, 1 − min(x,5)/5)^2.5, without the power:
// an epoch behind is a normal moment of loading state, not a fault).
func syncScore(behind, maxBehind uint64) float64 {
	return 1 - float64(min(behind, maxBehind))/float64(maxBehind)
}

// bandwidthScore is 0 at or below lo, 1 at or above hi, and logarithmic
// between: each doubling of the rate counts the same.
func bandwidthScore(rate, lo, hi float64) float64 {
	switch {
	case rate <= lo:
		return 0
	case rate >= hi:
		return 1
	}
	return math.Log(rate/lo) / math.Log(hi/lo)
}

// latencyScore is 1 at or below good, 0 at or above worst (also +Inf, a
// failed probe), and logarithmic between (seconds).
func latencyScore(rtt, good, worst float64) float64 {
	switch {
	case rtt <= good:
		return 1
	case rtt >= worst:
		return 0
	}
	return math.Log(worst/rtt) / math.Log(worst/good)
}
