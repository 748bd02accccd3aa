package epoch

import (
	"bytes"
	"cmp"
	"slices"
	"time"

	"github.com/dtrain-dev/dtrain/node/progress"
)

// maxPartners bounds the peers a Machine remembers having averaged with;
// past it, those of the oldest rounds are forgotten first.
const maxPartners = 4096

// notePartners records the contributors of a round this peer took part in
// and that succeeded: peers that announced a real contribution, reached a
// group with this peer and sent their parts. From then on their reports
// count toward the states this peer loads (votes).
func (m *Machine) notePartners(ids []string) {
	if m.partners == nil {
		m.partners = map[string]uint64{}
	}
	for _, p := range ids {
		if p != m.cfg.Self {
			m.partners[p] = m.epoch
		}
	}
	if len(m.partners) <= maxPartners {
		return
	}
	// Forget the oldest eighth, by the epoch of their last round.
	epochs := make([]uint64, 0, len(m.partners))
	for _, e := range m.partners {
		epochs = append(epochs, e)
	}
	slices.Sort(epochs)
	cut := epochs[len(epochs)/8]
	for p, e := range m.partners {
		if e <= cut {
			delete(m.partners, p)
		}
	}
}

// vouched reports whether peer's report is a vote on the states this
// peer loads: it is this peer, one of the run's validators, or a partner
// (notePartners) the validators do not exclude.
func (m *Machine) vouched(peer string) bool {
	if peer == m.cfg.Self || m.validator(peer) {
		return true
	}
	_, ok := m.partners[peer]
	return ok && !m.barred(peer)
}

// votes returns the census the load rules decide by (target, successor)
// and the census of every live report it was drawn from. The votes are
// the live reports of vouched peers only, so that identities that never
// averaged with this peer cannot choose its state however many they are.
// Each state's Offers still counts every live offer, since a donor only
// serves bytes the state's hash checks. A peer with no vouched peer live
// but itself (it has just started, or outlived every partner) counts every
// report, as it has nothing else to go by; a run's validators are then its
// anchor.
func (m *Machine) votes(now time.Duration) (votes, all *census) {
	all = m.census(now)
	if m.countAll {
		return all, all
	}
	v := &m.voted
	v.states, v.filtered = v.states[:0], true
	others := 0
	add := func(p string) {
		if r, ok := m.tracker.Report(now, p); ok {
			others++
			v.states = append(v.states, progress.StateCount{Epoch: r.Epoch, Hash: r.StateHash, Holders: 1})
		}
	}
	// This peer votes for the state it holds, reported yet or not.
	v.states = append(v.states, progress.StateCount{Epoch: m.epoch, Hash: m.hash, Holders: 1})
	for p := range m.partners {
		if !m.barred(p) {
			add(p)
		}
	}
	for _, p := range m.cfg.Validators {
		if _, partner := m.partners[p]; !partner && p != m.cfg.Self {
			add(p)
		}
	}
	if others == 0 {
		return all, all
	}
	slices.SortFunc(v.states, func(a, b progress.StateCount) int {
		if c := cmp.Compare(a.Epoch, b.Epoch); c != 0 {
			return c
		}
		return bytes.Compare(a.Hash[:], b.Hash[:])
	})
	out := v.states[:0]
	for _, s := range v.states {
		if n := len(out); n > 0 && out[n-1].Epoch == s.Epoch && out[n-1].Hash == s.Hash {
			out[n-1].Holders++
			continue
		}
		s.Offers = all.offers(s.Epoch, s.Hash)
		out = append(out, s)
	}
	v.states = out
	v.tally()
	return v, all
}

// offers is how many live peers other than this one offer state (epoch, hash).
func (c *census) offers(epoch uint64, hash [32]byte) int {
	for _, s := range c.at(epoch) {
		if s.Hash == hash {
			return s.Offers
		}
	}
	return 0
}

// distrustEpochs is how many epochs a peer Distrust names stays out of
// this peer's groups.
const distrustEpochs = 16

// Distrust takes peer out of this peer's groups for distrustEpochs epochs
// from its current one, and out of its partners: the caller proved it
// wrong (an owner whose part of a round's result differs from the
// recomputation, node/miner). Its announcements are refused and nobody
// waits for it meanwhile.
func (m *Machine) Distrust(peer string) {
	if peer == m.cfg.Self {
		return
	}
	if m.distrusted == nil {
		m.distrusted = map[string]uint64{}
	}
	m.distrusted[peer] = m.epoch + distrustEpochs
	delete(m.partners, peer)
}

// distrusts reports whether peer is out of this peer's groups (Distrust).
func (m *Machine) distrusts(peer string) bool {
	until, ok := m.distrusted[peer]
	if ok && m.epoch > until {
		delete(m.distrusted, peer)
		return false
	}
	return ok
}
