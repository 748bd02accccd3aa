package links

import (
	"slices"
	"time"
)

// Source says where a sample came from.
type Source int

// The sources.
const (
	Probe Source = iota // a bandwidth probe to one peer
	Round               // an all-reduce round's bytes over its time
)

// Direction says which way a sample's bytes went.
type Direction int

// The directions.
const (
	Up   Direction = iota // sent by this peer
	Down                  // received by it
)

// Tuning of the estimate and of the probes.
const (
	// MinSampleBytes is the smallest transfer taken as a sample: below it
	// the time is mostly round trips and start-up, not the link's rate.
	MinSampleBytes = 256 << 10
	// smoothing is the EMA's weight of a new (median-filtered) sample.
	smoothing = 0.5
	// probeTime is how long a probe should take at the estimated rate;
	// ProbeBytes stays within [MinProbeBytes, MaxProbeBytes].
	probeTime     = 500 * time.Millisecond
	MinProbeBytes = 1 << 20
	MaxProbeBytes = 16 << 20
	firstProbe    = 2 << 20
)

// Rates are a peer's estimated link rates in bytes/s; 0 is not measured.
type Rates struct {
	Up, Down float64
}

// Bandwidth is the one figure a span is sized by: the slower direction,
// since in a butterfly all-reduce a member sends as many bytes as it
// receives (allreduce.SpansForRoles). With one direction measured it is
// that one; with none, 0.
func (r Rates) Bandwidth() float64 {
	switch {
	case r.Up == 0:
		return r.Down
	case r.Down == 0:
		return r.Up
	}
	return min(r.Up, r.Down)
}

// Estimator holds the estimates; its zero value has measured nothing. It
// is not safe for concurrent use.
type Estimator struct {
	est [2][2]series // by Source, then Direction
}

// series is one source's estimate of one direction.
type series struct {
	last [3]float64 // the last samples, newest at n%3
	n    int
	ema  float64
}

// Add records that bytes crossed the link in direction dir in took, and
// reports whether it counted: transfers under MinSampleBytes, or that took
// no time, do not.
func (e *Estimator) Add(src Source, dir Direction, bytes int64, took time.Duration) bool {
	if src < Probe || src > Round || dir < Up || dir > Down || bytes < MinSampleBytes || took <= 0 {
		return false
	}
	e.est[src][dir].add(float64(bytes) / took.Seconds())
	return true
}

func (s *series) add(rate float64) {
	s.last[s.n%3] = rate
	s.n++
	var filtered float64
	switch s.n {
	case 1:
		filtered = rate
	case 2:
		filtered = min(s.last[0], s.last[1])
	default:
		sorted := s.last
		slices.Sort(sorted[:])
		filtered = sorted[1]
	}
	if s.n == 1 {
		s.ema = filtered
		return
	}
	s.ema += smoothing * (filtered - s.ema)
}

// Rates are the current estimates: per direction the larger of the probes'
// and the rounds' (both are lower bounds of the link).
func (e *Estimator) Rates() Rates {
	return Rates{
		Up:   max(e.est[Probe][Up].ema, e.est[Round][Up].ema),
		Down: max(e.est[Probe][Down].ema, e.est[Round][Down].ema),
	}
}

// ProbeBytes is the size of the next probe: about half a second at the
// estimated rate of the slower direction, within [MinProbeBytes,
// MaxProbeBytes]; 2 MiB before anything is measured.
func (e *Estimator) ProbeBytes() int64 {
	b := e.Rates().Bandwidth()
	if b == 0 {
		return firstProbe
	}
	return min(max(int64(b*probeTime.Seconds()), MinProbeBytes), MaxProbeBytes)
}
