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
// decision from the tracker's counts (progress.Tracker.States).
type census struct {
	live   int
	swarm  uint64                // the swarm epoch (progress.Tracker.SwarmEpoch)
	states []progress.StateCount // sorted by epoch and hash, the zero hash included
	// filtered says the counts are of vouched peers only (votes).
	filtered bool
}

// census counts the live reports into m.counts and returns it.
func (m *Machine) census(now time.Duration) *census {
	c := &m.counts
	c.states, c.filtered = m.tracker.States(now, c.states[:0]), false
	c.tally()
	return c
}

// tally sums c.live and finds c.swarm from c.states.
func (c *census) tally() {
	c.live, c.swarm = 0, 0
	for _, s := range c.states {
		c.live += s.Holders
	}
	// The swarm epoch is the (⌊n/2⌋+1)-th largest epoch.
	need := c.live/2 + 1
	for i := len(c.states) - 1; i >= 0; i-- {
		if need -= c.states[i].Holders; need <= 0 {
			c.swarm = c.states[i].Epoch
			break
		}
	}
}

// at returns the states counted at epoch.
func (c *census) at(epoch uint64) []progress.StateCount {
	i, _ := slices.BinarySearchFunc(c.states, epoch, func(s progress.StateCount, e uint64) int {
		switch {
		case s.Epoch < e:
			return -1
		case s.Epoch > e:
			return 1
		}
		return 0
	})
	j := i
	for j < len(c.states) && c.states[j].Epoch == epoch {
		j++
	}
	return c.states[i:j]
}

// majority is the hash most live peers at epoch hold, among those that
// report one, how many hold it and how many others offer it. A tie goes
// to prefer (this peer's own state there, so that it never reloads on a
// tie), else to the lowest hash, as progress.Tracker.HashAgreement.
func (c *census) majority(epoch uint64, prefer [32]byte) (hash [32]byte, n, donors int) {
	for _, s := range c.at(epoch) {
		if s.Hash == ([32]byte{}) {
			continue
		}
		tie := s.Holders == n && (s.Hash == prefer || (hash != prefer && bytes.Compare(s.Hash[:], hash[:]) < 0))
		if s.Holders > n || tie {
			hash, n, donors = s.Hash, s.Holders, s.Offers
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
