package score

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
)

// Sentinel errors for observations and calls that do not fit the epochs.
var (
	// ErrClosedEpoch: the epoch's weights were already computed; late
	// observations are dropped, so that weights once given never change.
	ErrClosedEpoch = errors.New("score: epoch already closed")
	// ErrFutureEpoch: the epoch is more than MaxAhead past the first open
	// one.
	ErrFutureEpoch = errors.New("score: epoch too far ahead")
	// ErrTooManyMiners: a new miner while MaxMiners are held and none can
	// be evicted.
	ErrTooManyMiners = errors.New("score: too many miners")
)

// Scorer turns observations of miners into weights. It is a state machine
// with no I/O and no clock: the caller feeds it observations with Observe
// and closes epochs with Weights. It is not safe for concurrent use.
//
// Epochs. Observations are for open epochs, from the first open one (the
// start passed to New, then the one after the last closed) to MaxAhead past
// it. Weights(e) closes every open epoch up to e, in order, then answers
// for e. Within an epoch the order of observations does not matter: each
// miner's are summarised without order (counts, minimums, sorted samples)
// and applied, at the close, in the order of miner ids.
//
// Bounds. At most MaxMiners miners are held. A new miner at the bound
// triggers, at most once per closed epoch, an eviction of up to an eighth
// of the held miners among those that currently get weight 0 for not being
// seen alive in AliveExpiry epochs and have no pending observations:
// caught cheaters last (so flooding ids does not wash a penalty out), then
// the longest unseen, then by id. If none can go, the new miner is refused
// with ErrTooManyMiners, in constant time until the next close. A miner
// not seen alive in EvictAfter epochs is forgotten at a close. Per miner
// and epoch, probe and rate samples are bounded by MaxSamples.
type Scorer struct {
	cfg       Config
	next      uint64 // the first open epoch
	closedAny bool   // whether next-1 has been closed
	miners    map[string]*miner
	quality   ring[float64] // recent positive pass qualities, all miners
	sweptAt   uint64        // next at the last capacity sweep
	swept     bool
}

// miner is what a Scorer holds about one miner.
type miner struct {
	pending []tally // by epoch % len; the open epochs
	touched uint64  // the latest epoch observed (open or closed)

	aliveEver bool
	aliveAt   uint64 // the latest closed epoch it was seen alive in
	roundEver bool
	roundAt   uint64 // the latest closed epoch it was in a round in

	probes   ring[probeSample]
	work     ema
	delivery ema
	sync     ema

	strikes int // cheats caught, at most maxStrikes
	clean   int // epochs with a pass since the last cheat
}

// maxStrikes caps the doubling of the recovery time: RecoveryEpochs·2^9.
const maxStrikes = 10

// New returns a Scorer whose first open epoch is start.
func New(cfg Config, start uint64) (*Scorer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.UIDs = maps.Clone(cfg.UIDs)
	return &Scorer{
		cfg:     cfg,
		next:    start,
		miners:  make(map[string]*miner),
		quality: newRing[float64](cfg.QualityWindow),
	}, nil
}

// Config returns the scorer's configuration.
func (s *Scorer) Config() Config {
	c := s.cfg
	c.UIDs = maps.Clone(c.UIDs)
	return c
}

// Next is the first open epoch.
func (s *Scorer) Next() uint64 { return s.next }

// Len is how many miners are held.
func (s *Scorer) Len() int { return len(s.miners) }

// Observe records one observation for its epoch. It refuses, changing
// nothing, an observation whose values are invalid (ErrBadObservation),
// whose epoch is closed (ErrClosedEpoch) or too far ahead (ErrFutureEpoch),
// a new miner when no room can be made (ErrTooManyMiners), and a sample
// over MaxSamples (ErrTooManySamples).
func (s *Scorer) Observe(o Observation) error {
	o, ok := value(o)
	if !ok {
		return fmt.Errorf("%w: nil", ErrBadObservation)
	}
	e, id := o.At(), o.Of()
	if err := checkMinerID(id); err != nil {
		return fmt.Errorf("%w: %v", ErrBadObservation, err)
	}
	if err := o.check(); err != nil {
		return fmt.Errorf("%w: %T of %q in epoch %d: %v", ErrBadObservation, o, id, e, err)
	}
	switch {
	case e < s.next:
		return fmt.Errorf("%T of %q in epoch %d, first open %d: %w", o, id, e, s.next, ErrClosedEpoch)
	case e-s.next > s.cfg.MaxAhead:
		return fmt.Errorf("%T of %q in epoch %d, first open %d: %w", o, id, e, s.next, ErrFutureEpoch)
	}
	m, err := s.minerFor(id)
	if err != nil {
		return fmt.Errorf("%T of %q in epoch %d: %w", o, id, e, err)
	}
	t := m.tallyFor(e)
	if err := o.add(t, s.cfg.MaxSamples); err != nil {
		return fmt.Errorf("%T of %q in epoch %d: %w", o, id, e, err)
	}
	t.used = true
	m.touched = max(m.touched, e)
	return nil
}

// value returns o by value: *Probe and the like are Observations too, and
// a nil one must be refused, not dereferenced.
func value(o Observation) (Observation, bool) {
	switch p := o.(type) {
	case nil:
		return nil, false
	case *Probe:
		return deref(p)
	case *Round:
		return deref(p)
	case *Verdict:
		return deref(p)
	case *Seen:
		return deref(p)
	}
	return o, true
}

func deref[T Observation](p *T) (Observation, bool) {
	if p == nil {
		return nil, false
	}
	return *p, true
}

// minerFor returns id's record, making one if there is room.
func (s *Scorer) minerFor(id string) (*miner, error) {
	if m, ok := s.miners[id]; ok {
		return m, nil
	}
	if len(s.miners) >= s.cfg.MaxMiners {
		s.makeRoom()
		if len(s.miners) >= s.cfg.MaxMiners {
			return nil, ErrTooManyMiners
		}
	}
	m := &miner{
		pending: make([]tally, s.cfg.MaxAhead+1),
		touched: s.next,
		probes:  newRing[probeSample](s.cfg.ProbeWindow),
	}
	s.miners[id] = m
	return m, nil
}

// makeRoom evicts up to an eighth of the miners among those without weight
// for want of being seen alive and without pending observations; once per
// close.
func (s *Scorer) makeRoom() {
	if s.swept && s.sweptAt == s.next {
		return
	}
	s.swept, s.sweptAt = true, s.next
	type candidate struct {
		id        string
		penalised bool
		idle      uint64
	}
	var cs []candidate
	for id, m := range s.miners {
		if m.touched >= s.next || !s.closedAny {
			continue // has pending observations
		}
		if idle := m.idleSince(); idle+s.cfg.AliveExpiry < s.next {
			cs = append(cs, candidate{id, m.strikes > 0, idle})
		}
	}
	slices.SortFunc(cs, func(a, b candidate) int {
		switch {
		case a.penalised != b.penalised:
			if a.penalised {
				return 1
			}
			return -1
		case a.idle != b.idle:
			return cmp.Compare(a.idle, b.idle)
		}
		return cmp.Compare(a.id, b.id)
	})
	for _, c := range cs[:min(len(cs), max(1, s.cfg.MaxMiners/8))] {
		delete(s.miners, c.id)
	}
}

// idleSince is the latest closed epoch the miner was seen alive in, or, if
// never, the latest it was observed in.
func (m *miner) idleSince() uint64 {
	if m.aliveEver {
		return m.aliveAt
	}
	return m.touched
}

// tallyFor returns the tally of open epoch e, clearing a slot left by an
// earlier epoch (its slices keep their capacity).
func (m *miner) tallyFor(e uint64) *tally {
	t := &m.pending[e%uint64(len(m.pending))]
	if !t.used || t.epoch != e {
		t.reset(e)
	}
	return t
}

func (t *tally) reset(e uint64) {
	*t = tally{epoch: e, rtt: t.rtt[:0], up: t.up[:0], down: t.down[:0]}
}

// ema is an exponential moving average that its first sample starts, so a
// new miner is not pulled toward an arbitrary prior.
type ema struct {
	v  float64
	ok bool
}

func (a *ema) add(x, alpha float64) {
	if !a.ok {
		a.v, a.ok = x, true
		return
	}
	a.v += alpha * (x - a.v)
}

// ring holds the last len(buf) values added.
type ring[T any] struct {
	buf  []T
	head int // where the next value goes
	n    int
}

func newRing[T any](size int) ring[T] { return ring[T]{buf: make([]T, size)} }

func (r *ring[T]) add(v T) {
	r.buf[r.head] = v
	r.head = (r.head + 1) % len(r.buf)
	r.n = min(r.n+1, len(r.buf))
}

// values returns the values held, oldest first, in a new slice.
func (r *ring[T]) values() []T {
	out := make([]T, 0, r.n)
	for i := range r.n {
		out = append(out, r.buf[(r.head-r.n+i+len(r.buf))%len(r.buf)])
	}
	return out
}

// median of xs (reordered in place); NaN for none. The mean of the middle
// two for an even count.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	h := len(xs) / 2
	if len(xs)%2 == 1 {
		return xs[h]
	}
	return (xs[h-1] + xs[h]) / 2
}
