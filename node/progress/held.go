package progress

import "slices"

// held is a report the Tracker holds, in one 64-byte cache line: its state
// (epoch and hash) is named by its index in the Tracker's stateTable,
// which keeps the 40 bytes once for every peer that holds it. seen is a
// lower bound on the report's Time that States raises only when it looks
// at the report again (countedOut once the report has expired and left
// the counts). An update reads and writes this line alone.
type held struct {
	peer            string
	samples         uint64
	rate            float64
	time            int64
	seen            int64
	loss            float32
	state           int32
	offers, hasLoss bool
}

// report returns h as the Report it holds.
func (t *Tracker) report(h *held) Report {
	s := &t.states.entries[h.state]
	return Report{
		Peer: h.peer, Epoch: s.epoch, Samples: h.samples, SamplesPerSec: h.rate,
		HasLoss: h.hasLoss, Loss: h.loss, StateHash: s.hash, Offers: h.offers, Time: h.time,
	}
}

// set makes h hold r, whose state is at index state.
func (h *held) set(r Report, state int32) {
	h.peer, h.samples, h.rate, h.time = r.Peer, r.Samples, r.SamplesPerSec, r.Time
	h.loss, h.state, h.offers, h.hasLoss = r.Loss, state, r.Offers, r.HasLoss
}

// stateTable names the states the held reports are in and counts, for
// each, the reports still counted (States). An entry keeps its index
// while any held report names it (refs), so that a report stores 4 bytes
// for its 40. A swarm holds a handful of states, most reports repeat the
// state of the one before, and a linear search is cheaper than hashing 40
// bytes; a thousand distinct states still must not cost a million
// comparisons, so past smallStates a map finds them.
type stateTable struct {
	entries []stateEntry // by index; refs 0: free
	free    []int32
	last    int32
	used    int
	index   map[stateKey]int32 // while more than smallStates are used
	// inline holds the first entries, in the Tracker itself, whose header
	// every report reads anyway.
	inline [4]stateEntry
}

const smallStates = 8

type stateKey struct {
	epoch uint64
	hash  [32]byte
}

type stateEntry struct {
	stateKey
	holders, offers int // counted reports in the state; of those, offers by others than Config.Self
	refs            int // held reports naming the state
}

// intern returns the index of state k, taking a reference to it.
func (s *stateTable) intern(k stateKey) int32 {
	i := s.lookup(k)
	if i < 0 {
		if s.entries == nil {
			s.entries = s.inline[:0]
		}
		if n := len(s.free); n > 0 {
			i, s.free = s.free[n-1], s.free[:n-1]
		} else {
			i = int32(len(s.entries))
			s.entries = append(s.entries, stateEntry{})
		}
		s.entries[i] = stateEntry{stateKey: k}
		s.used++
		switch {
		case s.index != nil:
			s.index[k] = i
		case s.used > smallStates:
			s.index = make(map[stateKey]int32, 2*s.used)
			for j, e := range s.entries {
				if e.refs > 0 {
					s.index[e.stateKey] = int32(j)
				}
			}
			s.index[k] = i
		}
	}
	s.entries[i].refs++
	s.last = i
	return i
}

// lookup returns the index of state k, or -1.
func (s *stateTable) lookup(k stateKey) int32 {
	if i := s.last; int(i) < len(s.entries) && s.entries[i].refs > 0 && s.entries[i].stateKey == k {
		return i
	}
	if s.index != nil {
		if i, ok := s.index[k]; ok {
			return i
		}
		return -1
	}
	return int32(slices.IndexFunc(s.entries, func(e stateEntry) bool { return e.refs > 0 && e.stateKey == k }))
}

// release drops a reference to state i, freeing it with the last.
func (s *stateTable) release(i int32) {
	e := &s.entries[i]
	if e.refs--; e.refs > 0 {
		return
	}
	if s.index != nil {
		delete(s.index, e.stateKey)
	}
	*e = stateEntry{}
	s.free = append(s.free, i)
	if s.used--; s.used <= smallStates/2 {
		s.index = nil // few enough to search
	}
}

// count counts (n = 1) or uncounts (n = -1) a report in state i.
func (s *stateTable) count(i int32, offersToOthers bool, n int) {
	e := &s.entries[i]
	e.holders += n
	if offersToOthers {
		e.offers += n
	}
}

func (s *stateTable) appendTo(dst []StateCount) []StateCount {
	for _, e := range s.entries {
		if e.holders > 0 {
			dst = append(dst, StateCount{Epoch: e.epoch, Hash: e.hash, Holders: e.holders, Offers: e.offers})
		}
	}
	return dst
}
