package matchmaking

import (
	"fmt"
	"time"
)

// A round whose views all agreed but in which some members sent nothing is
// open: each silent member may have received every view in time, this
// peer's included, and formed the group. Silence is not disagreement: a
// member whose inbound messages are slow hears nobody while everyone else
// hears it (issue 14), and a member that crashed while sending its view
// reached some members and not others. Leaving the silent members out is
// what a crash needs, and the next round's view goes to them too: a formed
// peer answers any later view from a member of its group with its formed
// view, which the asker adopts (it sent that view in that round).
//
// Two cases would give up on a group that may have formed with this peer,
// and leave its members waiting for it in the all-reduce: the members left
// are below MinGroup (or just this peer), so it would fail; or a member that
// sent this peer its own view in an open round is silent now, so it may
// have formed that view, and its answer may still be on its way while the
// members left form a smaller group without it.
//
// Then this peer waits instead. Its view becomes just itself, which never
// forms, and each round up to MaxRounds it sends that view to every other
// member of the first open round's view. A formed member answers with its
// formed view, which this peer adopts; any other member reads it as this
// peer leaving (the view leaves the receiver out) and drops it. After the
// last round it fails, or, with MinGroup 1, forms alone. Waiting never
// forms a group with others: it only turns a failure, or a smaller group,
// into a group that a member formed with every member's view in hand. Its
// price is liveness, not safety: when the silent member had not formed (it
// was only slow), this peer fails where it could have formed without it.

// wait starts waiting for a formed answer; agree is how many members were
// left in this peer's view.
func (m *Matchmaker) wait(now time.Duration, agree int) []Outgoing {
	m.agree = agree
	var self []Member
	for _, x := range m.open {
		if x.ID == m.cfg.Self {
			self = []Member{x}
		} else {
			m.waiting = append(m.waiting, x)
		}
	}
	return m.startRound(now, m.round+1, self, m.waiting)
}

// waitMore ends a waiting round. The next one asks again: a member may have
// formed, or adopted a group, after the last question reached it.
func (m *Matchmaker) waitMore(now time.Duration) []Outgoing {
	switch {
	case m.round+1 < m.cfg.MaxRounds:
		return m.startRound(now, m.round+1, m.view, m.waiting)
	case m.cfg.MinGroup <= 1:
		return m.form(m.round, m.view)
	}
	err := ErrNoAgreement
	if m.agree < m.cfg.MinGroup {
		err = ErrBelowMin
	}
	return m.fail(fmt.Errorf("matchmaking: %s: %d members agree, min %d, and none of the %d others answered in %d rounds that it formed: %w",
		m.cfg.Self, m.agree, m.cfg.MinGroup, len(m.waiting), m.round+1, err))
}
