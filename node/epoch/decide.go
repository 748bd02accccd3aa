package epoch

import (
	"bytes"
	"slices"
	"time"

	"github.com/dtrain-dev/dtrain/node/matchmaking"

	"github.com/dtrain-dev/dtrain/node/progress"
)

// target returns the Load the rules ask for at now (doc.go, "Rules"), if
// any: behind the swarm, a successor to take, or off the majority's
// lineage. The rules count votes (vouched peers' reports); a state that
// nobody offers is not a target.
func (m *Machine) target(now time.Duration) (Action, bool) {
	c, all := m.votes(now)
	offer := func(epoch uint64, hash [32]byte, donors, atLeast int) (Action, bool) {
		if hash == ([32]byte{}) || donors < atLeast {
			return Action{}, false
		}
		return Action{Kind: Load, Epoch: epoch, Hash: hash, Donors: m.donors(now, epoch, hash)}, true
	}
	// Behind: a strict majority is at a later epoch.
	if s := c.swarm; s > m.epoch {
		h, _, d := c.majority(s, [32]byte{})
		if a, ok := offer(s, h, d, 1); ok {
			return a, true
		}
	}
	// Successor: a group's average of this epoch, held by two or more.
	if h, ok, _ := m.successorHash(now, c, all, nil); ok {
		if a, ok := offer(m.epoch+1, h, all.offers(m.epoch+1, h), 2); ok {
			return a, true
		}
	}
	// Diverged at this epoch.
	if h, _, d := c.majority(m.epoch, m.hash); h != m.hash {
		if a, ok := offer(m.epoch, h, d, 1); ok {
			return a, true
		}
	}
	// Ahead on a minority's lineage: a strict majority of the live peers
	// holds, at an earlier epoch, a state this peer did not. A strict
	// majority at exactly epoch e makes e the swarm epoch, so that is the
	// only epoch to look at.
	if s := c.swarm; s < m.epoch {
		mine, known := m.history[s]
		h, n, d := c.majority(s, mine)
		if known && mine != h && 2*n > c.live {
			if a, ok := offer(s, h, d, 1); ok {
				return a, true
			}
		}
	}
	return Action{}, false
}

// successorHash returns the state of the next epoch that two or more live
// peers outside group (nil: none left out) offer, counted over all, at
// least one of them a vouched one when votes counts vouched peers only:
// so strangers, however many, cannot hand this peer a successor, while a
// partner that holds the average (a delegate this peer's group waits for)
// can. Of several, it takes the one most vouched peers hold, then most
// peers, then the lowest hash.
func (m *Machine) successorHash(now time.Duration, votes, all *census, group map[string]bool) (hash [32]byte, ok, strangers bool) {
	// Without two offers of a state of the next epoch, none can have two.
	if !slices.ContainsFunc(all.at(m.epoch+1), func(s progress.StateCount) bool {
		return s.Hash != ([32]byte{}) && s.Offers >= 2
	}) {
		return [32]byte{}, false, false
	}
	type count struct{ all, vouched int }
	held := map[[32]byte]*count{}
	m.tracker.Each(now, func(r progress.Report) {
		if r.Epoch != m.epoch+1 || r.StateHash == ([32]byte{}) || !r.Offers || r.Peer == m.cfg.Self || group[r.Peer] {
			return
		}
		c := held[r.StateHash]
		if c == nil {
			c = &count{}
			held[r.StateHash] = c
		}
		c.all++
		if !votes.filtered || m.vouched(r.Peer) {
			c.vouched++
		}
	})
	var best [32]byte
	var most count
	for h, c := range held {
		if c.all >= 2 && c.vouched < 1 {
			strangers = true
		}
		if c.all < 2 || c.vouched < 1 {
			continue
		}
		better := c.vouched > most.vouched ||
			(c.vouched == most.vouched && (c.all > most.all || (c.all == most.all && bytes.Compare(h[:], best[:]) < 0)))
		if most.all == 0 || better {
			best, most = h, *c
		}
	}
	return best, most.all > 0, strangers
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
	// A state's Offers counts its holders other than this peer that offer
	// it: a validator offers none, and one that does is taken out below.
	counts := func(epoch uint64, hash [32]byte) bool {
		return (epoch == m.epoch && hash == m.hash) || epoch+1 == m.epoch
	}
	for _, st := range m.census(now).states {
		if counts(st.Epoch, st.Hash) {
			n += st.Offers
		}
	}
	for _, v := range m.cfg.Validators {
		if r, ok := m.tracker.Report(now, v); ok && v != m.cfg.Self && r.Offers && counts(r.Epoch, r.StateHash) {
			n--
		}
	}
	if m.cfg.Excluded != nil || len(m.overweight) > 0 || len(m.distrusted) > 0 {
		// Peers the validators exclude, or that announced more samples
		// than an epoch holds, offer their state but may not contribute:
		// nobody waits for them.
		m.tracker.Each(now, func(r progress.Report) {
			if r.Peer != m.cfg.Self && r.Offers && counts(r.Epoch, r.StateHash) && !m.validator(r.Peer) && m.barred(r.Peer) {
				n--
				m.unexpected[r.Peer] = true
			}
		})
	}
	return max(n, 0)
}

// barred reports whether peer p may not contribute to this peer's epoch:
// the validators exclude it, it announced more samples than an epoch
// holds within overweightEpochs epochs, or this peer distrusts it
// (Distrust).
func (m *Machine) barred(p string) bool {
	if e, ok := m.overweight[p]; ok && m.epoch <= e+overweightEpochs {
		return true
	}
	if m.distrusts(p) {
		return true
	}
	return m.cfg.Excluded != nil && m.cfg.Excluded(p, m.epoch)
}

// expectedAux is how many aux members, this peer included if it is one,
// should join its epoch's matchmaking: the run's validators whose live
// report follows this epoch from this peer's state. Matchmaking gives them
// one message delay after the contributors are complete
// (matchmaking.Config.ExpectedAux).
func (m *Machine) expectedAux(now time.Duration) int {
	n := 0
	if m.cfg.Role == matchmaking.Aux {
		n = 1
	}
	for _, v := range m.cfg.Validators {
		if r, ok := m.tracker.Report(now, v); ok && v != m.cfg.Self && r.Epoch == m.epoch && r.StateHash == m.hash {
			n++
		}
	}
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
// more peers outside group g (successorHash), if there is one; strangers
// says that, failing one, such a state is held by peers none of whom this
// peer vouches for.
func (m *Machine) successor(now time.Duration, g matchmaking.Group) (act Action, strangers bool) {
	in := make(map[string]bool, len(g.Members))
	for _, mb := range g.Members {
		in[mb.ID] = true
	}
	votes, all := m.votes(now)
	best, ok, strangers := m.successorHash(now, votes, all, in)
	if !ok {
		return Action{}, strangers
	}
	return Action{Kind: Load, Epoch: m.epoch + 1, Hash: best, Donors: m.donors(now, m.epoch+1, best)}, false
}

// quorum is how many contributors, times two, a mean of the given stage
// needs before this peer applies it: half the peers it expected at the
// epoch (stage 1 with one group), or half the epoch's groups (stage 2).
// Two means of one epoch can then both be applied only by two exact
// halves, so a late group of stragglers never makes a second version
// while the bulk of the swarm is still averaging. Of the expected peers
// only as many count as have announced a contribution for the epoch from
// this state (this peer included): the bulk of the swarm has, by the time
// stragglers average, while fresh identities that report the state and
// never announce would otherwise leave every mean short of its quorum.
func (m *Machine) quorum(stage int) int {
	switch {
	case stage == 2:
		return m.groups
	case m.groups > 1:
		return 0 // the delegates' round decides
	}
	announced := len(m.announcers) + 1
	if m.mm != nil {
		announced = max(announced, m.mm.Announced())
	}
	return min(m.expect, announced)
}

// validator reports whether peer is one of the run's trusted validators.
func (m *Machine) validator(peer string) bool { return slices.Contains(m.cfg.Validators, peer) }

// trusted is matchmaking's Config.Validators: this peer itself (a
// validator announces itself as aux) and the run's validators.
func (m *Machine) trusted(peer string) bool { return peer == m.cfg.Self || m.validator(peer) }
