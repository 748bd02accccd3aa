package epoch

import (
	"bytes"
	"slices"
	"time"

	"github.com/dtrain-dev/dtrain/node/progress"
)

// census is what the live reports (this peer's own included) say about
// the swarm: how many peers are at each epoch, and how many hold and
// offer each state. A Machine keeps one and refills it for every
// decision, so that counting a thousand reports allocates nothing.
type census struct {
	live  int
	swarm uint64 // the swarm epoch (progress.Tracker.SwarmEpoch)
	// states counts the live reports by (epoch, hash), the zero hash
	// included, in the order first seen.
	states []stateCount
	// last is where the previous report was counted: most reports
	// repeat the state of the one before.
	last int
	// index finds a state once there are more than smallCensus: a swarm
	// holds a handful, and a linear search is cheaper than hashing 40
	// bytes, but a thousand distinct states must not cost a million
	// comparisons.
	index  map[stateKey]int
	epochs []epochCount
}

const smallCensus = 8

type stateKey struct {
	epoch uint64
	hash  [32]byte
}

type stateCount struct {
	stateKey
	holders int // live peers at epoch reporting hash
	donors  int // of those, the peers other than self that offer it
}

type epochCount struct {
	epoch uint64
	n     int
}

// census counts the live reports into m.counts and returns it.
func (m *Machine) census(now time.Duration) *census {
	c := &m.counts
	c.live, c.swarm, c.last = 0, 0, 0
	c.states = c.states[:0]
	c.index = nil
	m.tracker.Each(now, func(r progress.Report) {
		c.live++
		c.add(stateKey{r.Epoch, r.StateHash}, r.Offers && r.Peer != m.cfg.Self)
	})
	// The swarm epoch is the (⌊n/2⌋+1)-th largest epoch.
	c.epochs = c.epochs[:0]
	for _, s := range c.states {
		c.epochs = append(c.epochs, epochCount{s.epoch, s.holders})
	}
	slices.SortFunc(c.epochs, func(a, b epochCount) int { return -cmpUint(a.epoch, b.epoch) })
	need := c.live/2 + 1
	for _, e := range c.epochs {
		if need -= e.n; need <= 0 {
			c.swarm = e.epoch
			break
		}
	}
	return c
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// add counts one live report of state k.
func (c *census) add(k stateKey, donor bool) {
	i := c.last
	if i >= len(c.states) || c.states[i].stateKey != k {
		i = c.find(k)
		c.last = i
	}
	c.states[i].holders++
	if donor {
		c.states[i].donors++
	}
}

// find returns the position of state k, adding it if new.
func (c *census) find(k stateKey) int {
	if c.index != nil {
		if i, ok := c.index[k]; ok {
			return i
		}
	} else {
		for i := range c.states {
			if c.states[i].stateKey == k {
				return i
			}
		}
	}
	i := len(c.states)
	c.states = append(c.states, stateCount{stateKey: k})
	switch {
	case c.index != nil:
		c.index[k] = i
	case len(c.states) > smallCensus:
		c.index = make(map[stateKey]int, 2*len(c.states))
		for j, s := range c.states {
			c.index[s.stateKey] = j
		}
	}
	return i
}

// majority is the hash most live peers at epoch hold, among those that
// report one (ties to the lowest, as progress.Tracker.HashAgreement), how
// many hold it and how many others offer it.
func (c *census) majority(epoch uint64) (hash [32]byte, n, donors int) {
	for _, s := range c.states {
		if s.epoch != epoch || s.hash == ([32]byte{}) {
			continue
		}
		if s.holders > n || (s.holders == n && bytes.Compare(s.hash[:], hash[:]) < 0) {
			hash, n, donors = s.hash, s.holders, s.donors
		}
	}
	return hash, n, donors
}

// donors returns the sorted ids of the live peers other than this one
// that offer state (epoch, hash).
func (m *Machine) donors(now time.Duration, epoch uint64, hash [32]byte) []string {
	var ids []string
	m.tracker.Each(now, func(r progress.Report) {
		if r.Epoch == epoch && r.StateHash == hash && r.Offers && r.Peer != m.cfg.Self {
			ids = append(ids, r.Peer)
		}
	})
	slices.Sort(ids)
	return ids
}
