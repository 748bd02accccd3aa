package epoch

import (
	"bytes"
	"slices"
	"time"

	"github.com/dtrain-dev/dtrain/node/matchmaking"

	"github.com/dtrain-dev/dtrain/node/progress"
)

// census is what the live reports (this peer's own included) say about
// the swarm: how many peers are at each epoch, and who holds which state
// at the epochs the rules look at.
type census struct {
	live    int
	swarm   uint64 // the swarm epoch (progress.Tracker.SwarmEpoch)
	holders map[uint64]map[[32]byte]int
	donors  map[uint64]map[[32]byte][]string // offering peers other than self, in no order
}

// census counts the live reports. Hashes are counted at the swarm epoch,
// this peer's epoch and the next: no rule looks elsewhere.
func (m *Machine) census(now time.Duration) census {
	c := census{holders: map[uint64]map[[32]byte]int{}, donors: map[uint64]map[[32]byte][]string{}}
	at := map[uint64]int{}
	m.tracker.Each(now, func(r progress.Report) {
		c.live++
		at[r.Epoch]++
	})
	// The swarm epoch is the (⌊n/2⌋+1)-th largest epoch.
	epochs := make([]uint64, 0, len(at))
	for e := range at {
		epochs = append(epochs, e)
	}
	slices.Sort(epochs)
	need := c.live/2 + 1
	for i := len(epochs) - 1; i >= 0; i-- {
		if need -= at[epochs[i]]; need <= 0 {
			c.swarm = epochs[i]
			break
		}
	}
	m.tracker.Each(now, func(r progress.Report) {
		if r.StateHash == ([32]byte{}) || (r.Epoch != c.swarm && r.Epoch != m.epoch && r.Epoch != m.epoch+1) {
			return
		}
		if c.holders[r.Epoch] == nil {
			c.holders[r.Epoch] = map[[32]byte]int{}
			c.donors[r.Epoch] = map[[32]byte][]string{}
		}
		c.holders[r.Epoch][r.StateHash]++
		if r.Offers && r.Peer != m.cfg.Self {
			c.donors[r.Epoch][r.StateHash] = append(c.donors[r.Epoch][r.StateHash], r.Peer)
		}
	})
	return c
}

// majority is the hash most live peers at epoch hold (ties to the lowest,
// as progress.Tracker.HashAgreement) and how many hold it.
func (c census) majority(epoch uint64) (hash [32]byte, n int) {
	for h, k := range c.holders[epoch] {
		if k > n || (k == n && bytes.Compare(h[:], hash[:]) < 0) {
			hash, n = h, k
		}
	}
	return hash, n
}

// target returns the Load the rules ask for at now (doc.go, "Rules"), if
// any: behind the swarm, a successor to take, or off the majority's
// lineage. A state that nobody offers is not a target.
func (m *Machine) target(now time.Duration) (Action, bool) {
	c := m.census(now)
	offer := func(epoch uint64, hash [32]byte, atLeast int) (Action, bool) {
		d := c.donors[epoch][hash]
		if hash == ([32]byte{}) || len(d) < atLeast {
			return Action{}, false
		}
		d = slices.Clone(d)
		slices.Sort(d)
		return Action{Kind: Load, Epoch: epoch, Hash: hash, Donors: d}, true
	}
	// Behind: a strict majority is at a later epoch.
	if s := c.swarm; s > m.epoch {
		h, _ := c.majority(s)
		if a, ok := offer(s, h, 1); ok {
			return a, true
		}
	}
	// Successor: a group's average of this epoch, held by two or more.
	if h, n := c.majority(m.epoch + 1); n >= 2 {
		if a, ok := offer(m.epoch+1, h, 2); ok {
			return a, true
		}
	}
	// Diverged at this epoch.
	if h, _ := c.majority(m.epoch); h != m.hash {
		if a, ok := offer(m.epoch, h, 1); ok {
			return a, true
		}
	}
	// Ahead on a minority's lineage: a strict majority of the live peers
	// holds, at an earlier epoch, a state this peer did not. A strict
	// majority at exactly epoch e makes e the swarm epoch, so that is the
	// only epoch to look at.
	if s := c.swarm; s < m.epoch {
		h, n := c.majority(s)
		if mine, known := m.history[s]; known && mine != h && 2*n > c.live {
			if a, ok := offer(s, h, 1); ok {
				return a, true
			}
		}
	}
	return Action{}, false
}

// expected is how many contributors, this peer included unless it is aux,
// should announce for its epoch: the live peers at this epoch from the
// same state, and those one epoch behind (they may still get here), the
// run's validators and peers that offer no state left out (they
// contribute nothing; a validator follows the state by hash and offers
// none, node/validator). Matchmaking stops collecting once that many
// contributors are ready; counting too few splits the swarm's groups.
func (m *Machine) expected(now time.Duration) int {
	n := 1
	if m.cfg.Role == matchmaking.Aux {
		n = 0
	}
	m.tracker.Each(now, func(r progress.Report) {
		if r.Peer != m.cfg.Self && r.Offers && !m.validator(r.Peer) && ((r.Epoch == m.epoch && r.StateHash == m.hash) || r.Epoch+1 == m.epoch) {
			n++
		}
	})
	return n
}

// unreported is how many of the caller's neighbours (SetNeighbours) have
// no live report: peers that joined the run but have not decided yet, as
// every peer of a swarm that starts together has not when the first of
// them is ready. Matchmaking waits for them until its deadline rather
// than close at once with the few that reported.
func (m *Machine) unreported(now time.Duration) int {
	if len(m.neighbours) == 0 {
		return 0
	}
	reported := map[string]bool{}
	m.tracker.Each(now, func(r progress.Report) { reported[r.Peer] = true })
	n := 0
	for _, p := range m.neighbours {
		if p != m.cfg.Self && !reported[p] && !m.validator(p) {
			n++
		}
	}
	return n
}

// observeOwn feeds this peer's report to its tracker, where it counts like
// any other toward the swarm epoch and the majorities.
func (m *Machine) observeOwn(now time.Duration, r progress.Report) {
	_ = m.tracker.Observe(now, r) // built valid here
}

// successor returns the Load of a state of the next epoch held by two or
// more peers outside group g, if there is one.
func (m *Machine) successor(now time.Duration, g matchmaking.Group) (Action, bool) {
	c := m.census(now)
	in := make(map[string]bool, len(g.Members))
	for _, mb := range g.Members {
		in[mb.ID] = true
	}
	var best Action
	n := 0
	for h, donors := range c.donors[m.epoch+1] {
		k := 0
		for _, d := range donors {
			if !in[d] {
				k++
			}
		}
		if k >= 2 && (k > n || (k == n && bytes.Compare(h[:], best.Hash[:]) < 0)) {
			best, n = Action{Kind: Load, Epoch: m.epoch + 1, Hash: h, Donors: donors}, k
		}
	}
	if n == 0 {
		return Action{}, false
	}
	best.Donors = slices.Clone(best.Donors)
	slices.Sort(best.Donors)
	return best, true
}

// quorum is how many contributors, times two, a mean of the given stage
// needs before this peer applies it: half the peers it expected at the
// epoch (stage 1 with one group), or half the epoch's groups (stage 2).
// Two means of one epoch can then both be applied only by two exact
// halves, so a late group of stragglers never makes a second version
// while the bulk of the swarm is still averaging.
func (m *Machine) quorum(stage int) int {
	switch {
	case stage == 2:
		return m.groups
	case m.groups > 1:
		return 0 // the delegates' round decides
	}
	return m.expect
}

// validator reports whether peer is one of the run's trusted validators.
func (m *Machine) validator(peer string) bool { return slices.Contains(m.cfg.Validators, peer) }

// trusted is matchmaking's Config.Validators: this peer itself (a
// validator announces itself as aux) and the run's validators.
func (m *Machine) trusted(peer string) bool { return peer == m.cfg.Self || m.validator(peer) }
