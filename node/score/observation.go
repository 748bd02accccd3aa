package score

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// An Observation is one fact about one miner in one epoch: a Probe, a
// Round, a Verdict or a Seen. The set is closed.
type Observation interface {
	// At is the epoch the observation belongs to.
	At() uint64
	// Of is the miner it is about.
	Of() string
	check() error
	add(t *tally, maxSamples int) error
}

// Probe is one measurement of a miner's link by this validator (netx.Ping
// and netx.MeasureBandwidth). Rates are bytes/s; a zero field was not
// measured. Directions are the miner's: Up is what the validator received
// from it (a Download probe), Down what it sent to it (an Upload probe).
type Probe struct {
	Epoch    uint64
	Miner    string
	RTT      time.Duration
	Up, Down float64
	// Failed is a probe that found the miner unreachable, or refused: it
	// counts as no bandwidth and unbounded latency. Other fields must be 0.
	Failed bool
}

// Delivery is how a miner delivered its part in a round.
type Delivery uint8

const (
	// OnTime: before the round's deadline.
	OnTime Delivery = iota + 1
	// Late: after the deadline, so the round went on without it.
	Late
	// Missed: never, or invalid.
	Missed
)

// Round is a miner's part in one all-reduce round this validator joined as
// an aux member.
type Round struct {
	Epoch    uint64
	Miner    string
	Delivery Delivery
	// Rate is the bytes/s at which the miner's part reached this
	// validator, if measured (else 0); it is a sample of the miner's
	// uplink, taken from real traffic that a miner cannot single out the
	// way it could a probe.
	Rate float64
}

// VerdictKind is the outcome of a work check.
type VerdictKind uint8

const (
	// Pass: the check found the work genuine.
	Pass VerdictKind = iota + 1
	// Inconclusive: the check could not tell (no update to check, noise);
	// it changes nothing.
	Inconclusive
	// Cheat: the check caught the miner (work not done, a commitment that
	// does not match, a copy, a stale update passed off as new...).
	Cheat
)

// Limits on verdict fields.
const (
	MaxQuality = 1e6
	MaxReason  = 64
)

// Verdict is the result of checking a miner's work for an epoch.
type Verdict struct {
	Epoch uint64
	Miner string
	Kind  VerdictKind
	// Quality, for a Pass, is how much the update helped, higher better:
	// e.g. the relative loss improvement on the miner's assigned batches.
	// Only its ratio to the median of recent passes matters; a negative
	// value counts as 0. Its magnitude is at most MaxQuality.
	Quality float64
	// Reason, for a Cheat, says why (at most MaxReason bytes of UTF-8).
	Reason string
}

// Seen is a miner seen alive on the run (its progress report, say) and how
// many epochs it is behind the swarm.
type Seen struct {
	Epoch  uint64
	Miner  string
	Behind uint64
}

// ErrBadObservation marks an observation refused for its values.
var ErrBadObservation = errors.New("score: bad observation")

// ErrTooManySamples marks an observation refused because its miner already
// has MaxSamples of its kind in that epoch.
var ErrTooManySamples = errors.New("score: too many samples for one miner in one epoch")

func (p Probe) At() uint64   { return p.Epoch }
func (p Probe) Of() string   { return p.Miner }
func (r Round) At() uint64   { return r.Epoch }
func (r Round) Of() string   { return r.Miner }
func (v Verdict) At() uint64 { return v.Epoch }
func (v Verdict) Of() string { return v.Miner }
func (s Seen) At() uint64    { return s.Epoch }
func (s Seen) Of() string    { return s.Miner }

func (p Probe) check() error {
	if p.Failed {
		if p.RTT != 0 || p.Up != 0 || p.Down != 0 {
			return errors.New("failed probe with measurements")
		}
		return nil
	}
	if p.RTT < 0 || p.RTT > maxRTTLimit {
		return fmt.Errorf("rtt %v, want 0 (not measured) or up to %v", p.RTT, maxRTTLimit)
	}
	if err := checkRate("up", p.Up); err != nil {
		return err
	}
	if err := checkRate("down", p.Down); err != nil {
		return err
	}
	if p.RTT == 0 && p.Up == 0 && p.Down == 0 {
		return errors.New("probe measured nothing")
	}
	return nil
}

func (r Round) check() error {
	if r.Delivery < OnTime || r.Delivery > Missed {
		return fmt.Errorf("unknown delivery %d", r.Delivery)
	}
	if err := checkRate("rate", r.Rate); err != nil {
		return err
	}
	if r.Delivery == Missed && r.Rate != 0 {
		return errors.New("missed delivery with a rate")
	}
	return nil
}

func (v Verdict) check() error {
	switch v.Kind {
	case Pass, Inconclusive, Cheat:
	default:
		return fmt.Errorf("unknown verdict kind %d", v.Kind)
	}
	if !finite(v.Quality) || v.Quality > MaxQuality || v.Quality < -MaxQuality {
		return fmt.Errorf("quality %v, want finite, magnitude at most %v", v.Quality, MaxQuality)
	}
	if len(v.Reason) > MaxReason || !utf8.ValidString(v.Reason) {
		return fmt.Errorf("reason of %d bytes, want at most %d of UTF-8", len(v.Reason), MaxReason)
	}
	return nil
}

func (s Seen) check() error { return nil }

// checkRate accepts 0 (not measured) or a finite positive rate up to
// maxBandwidthLimit.
func checkRate(name string, r float64) error {
	if !finite(r) || r < 0 || r > maxBandwidthLimit {
		return fmt.Errorf("%s %v bytes/s, want 0 (not measured) or finite, positive, at most %v", name, r, maxBandwidthLimit)
	}
	return nil
}

// tally gathers one miner's observations of one epoch. Every field is an
// order-free summary (counts, minimums, sample sets sorted before use), so
// the epoch's outcome does not depend on the order observations arrived in.
type tally struct {
	epoch uint64
	used  bool
	alive bool

	rtt            []time.Duration // answered probes
	up, down       []float64       // probe and round rate samples
	probeOK, fails int

	onTime, late, missed int

	verdict VerdictKind // 0: none; else the worst: Cheat > Pass > Inconclusive
	quality float64     // the lowest quality of the passes
	reason  string      // the least reason of the cheats

	seen   bool
	behind uint64 // the least
}

func (p Probe) add(t *tally, maxSamples int) error {
	// up also holds round rates, so it has its own bound.
	if t.probeOK+t.fails >= maxSamples || (p.Up > 0 && len(t.up) >= maxSamples) {
		return ErrTooManySamples
	}
	if p.Failed {
		t.fails++
		return nil
	}
	t.probeOK++
	t.alive = true
	if p.RTT > 0 {
		t.rtt = append(t.rtt, p.RTT)
	}
	if p.Up > 0 {
		t.up = append(t.up, p.Up)
	}
	if p.Down > 0 {
		t.down = append(t.down, p.Down)
	}
	return nil
}

func (r Round) add(t *tally, maxSamples int) error {
	if t.onTime+t.late+t.missed >= maxSamples || (r.Rate > 0 && len(t.up) >= maxSamples) {
		return ErrTooManySamples
	}
	switch r.Delivery {
	case OnTime:
		t.onTime++
	case Late:
		t.late++
	case Missed:
		t.missed++
	}
	if r.Delivery != Missed {
		t.alive = true
	}
	if r.Rate > 0 {
		t.up = append(t.up, r.Rate)
	}
	return nil
}

func (v Verdict) add(t *tally, _ int) error {
	switch {
	case v.Kind == Cheat && t.verdict == Cheat:
		t.reason = min(t.reason, v.Reason)
	case v.Kind == Cheat:
		t.verdict, t.reason = Cheat, v.Reason
	case v.Kind == Pass && t.verdict == Pass:
		t.quality = min(t.quality, v.Quality)
	case v.Kind == Pass && t.verdict != Cheat:
		t.verdict, t.quality = Pass, v.Quality
	case v.Kind == Inconclusive && t.verdict == 0:
		t.verdict = Inconclusive
	}
	return nil
}

func (s Seen) add(t *tally, _ int) error {
	if !t.seen || s.Behind < t.behind {
		t.behind = s.Behind
	}
	t.seen, t.alive = true, true
	return nil
}
