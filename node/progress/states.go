package progress

import (
	"bytes"
	"cmp"
	"math"
	"slices"
	"time"
)

// StateCount counts the live reports of one state: an epoch and the hash
// of the parameters it started from.
type StateCount struct {
	Epoch uint64
	Hash  [32]byte
	// Holders is how many live peers report the state, Config.Self
	// included; Offers how many of them, other than Config.Self, offer it.
	Holders, Offers int
}

// States appends to dst the live reports counted by (Epoch, StateHash),
// the zero hash included, sorted by epoch and hash, and returns it.
//
// The Tracker keeps these counts as reports arrive, so that a peer of a
// large swarm asks at every decision without a pass over every report:
// only reports that may have expired since the last call are looked at
// again. A now earlier than one the Tracker has seen counts afresh.
func (t *Tracker) States(now time.Duration, dst []StateCount) []StateCount {
	start := len(dst)
	if now < t.latest {
		var fresh stateTable
		t.Each(now, func(r Report) { fresh.add(r, t.cfg.Self, 1) })
		dst = fresh.appendTo(dst)
	} else {
		t.latest = now
		t.expire(now)
		dst = t.states.appendTo(dst)
	}
	slices.SortFunc(dst[start:], func(a, b StateCount) int {
		if c := cmp.Compare(a.Epoch, b.Epoch); c != 0 {
			return c
		}
		return bytes.Compare(a.Hash[:], b.Hash[:])
	})
	return dst
}

// countedOut marks, as held.seen, a report the counts have let go of: it
// had expired at a now the Tracker was asked about.
const countedOut = math.MaxInt64

// expire takes out of the counts the reports that have expired at now.
// A held report's seen is a lower bound on its Time, raised only here, so
// a pass is due only once the lowest of them is Expiry old, and a report
// whose bound is younger needs no look.
func (t *Tracker) expire(now time.Duration) {
	if t.minSeen == countedOut || t.age(now, Report{Time: t.minSeen}) < t.cfg.Expiry {
		return
	}
	t.minSeen = countedOut
	for i := range t.peers {
		h := &t.peers[i]
		if h.seen != countedOut && t.age(now, Report{Time: h.seen}) >= t.cfg.Expiry {
			if t.age(now, h.Report) >= t.cfg.Expiry {
				t.states.add(h.Report, t.cfg.Self, -1)
				h.seen = countedOut
			} else {
				h.seen = h.Time
			}
		}
		t.minSeen = min(t.minSeen, h.seen)
	}
}

// count records in the counts that h's report replaced old (nil for a
// new peer, whose seen is its Time).
func (t *Tracker) count(h *held, old *Report) {
	switch {
	case old == nil:
	case h.seen == countedOut:
		h.seen = h.Time
	default:
		h.seen = min(h.seen, h.Time)
		t.minSeen = min(t.minSeen, h.seen)
		if old.Epoch == h.Epoch && old.StateHash == h.StateHash && old.Offers == h.Offers {
			return
		}
		t.states.add(*old, t.cfg.Self, -1)
	}
	t.minSeen = min(t.minSeen, h.seen)
	t.states.add(h.Report, t.cfg.Self, 1)
}

// recount counts the held reports afresh (after a sweep moved them).
func (t *Tracker) recount() {
	t.states = stateTable{}
	t.minSeen = countedOut
	for i := range t.peers {
		h := &t.peers[i]
		h.seen = h.Time
		t.count(h, nil)
	}
}

// stateTable counts reports by state. A swarm holds a handful of states,
// most reports repeat the state of the one before, and a linear search is
// cheaper than hashing 40 bytes; a thousand distinct states still must not
// cost a million comparisons, so past smallStates a map finds them.
type stateTable struct {
	counts []StateCount
	last   int
	index  map[stateKey]int
	zeros  int // entries of counts with no holder left
	// inline holds the first states, in the Tracker itself, whose header
	// every report reads anyway.
	inline [4]StateCount
}

const smallStates = 8

type stateKey struct {
	epoch uint64
	hash  [32]byte
}

// add counts r (n = 1) or takes it out (n = -1).
func (s *stateTable) add(r Report, self string, n int) {
	i := s.find(stateKey{r.Epoch, r.StateHash})
	c := &s.counts[i]
	if c.Holders == 0 {
		s.zeros--
	}
	c.Holders += n
	if r.Offers && r.Peer != self {
		c.Offers += n
	}
	if c.Holders == 0 {
		s.zeros++
		if s.zeros > smallStates && 2*s.zeros > len(s.counts) {
			s.compact()
		}
	}
}

// find returns the position of state k in counts, adding it if new.
func (s *stateTable) find(k stateKey) int {
	if i := s.last; i < len(s.counts) && s.counts[i].Epoch == k.epoch && s.counts[i].Hash == k.hash {
		return i
	}
	if s.counts == nil {
		s.counts = s.inline[:0]
	}
	i, ok := 0, false
	if s.index != nil {
		i, ok = s.index[k]
	} else {
		i = slices.IndexFunc(s.counts, func(c StateCount) bool { return c.Epoch == k.epoch && c.Hash == k.hash })
		ok = i >= 0
	}
	if !ok {
		i = len(s.counts)
		s.counts = append(s.counts, StateCount{Epoch: k.epoch, Hash: k.hash})
		s.zeros++
		switch {
		case s.index != nil:
			s.index[k] = i
		case len(s.counts) > smallStates:
			s.reindex()
		}
	}
	s.last = i
	return i
}

// compact drops the states nobody holds any more.
func (s *stateTable) compact() {
	s.counts = slices.DeleteFunc(s.counts, func(c StateCount) bool { return c.Holders == 0 })
	s.zeros, s.last = 0, 0
	s.index = nil
	if len(s.counts) > smallStates {
		s.reindex()
	}
}

func (s *stateTable) reindex() {
	s.index = make(map[stateKey]int, 2*len(s.counts))
	for i, c := range s.counts {
		s.index[stateKey{c.Epoch, c.Hash}] = i
	}
}

func (s *stateTable) appendTo(dst []StateCount) []StateCount {
	for _, c := range s.counts {
		if c.Holders > 0 {
			dst = append(dst, c)
		}
	}
	return dst
}
