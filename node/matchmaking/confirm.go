package matchmaking

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// startRound sends this peer's view for round r to the other members and
// to probe (members outside the view that may have formed a group with this
// peer: wait.go), and applies the views for r that arrived early. Round r
// ends (r+1) ConfirmTimeouts after collecting ended, however early this
// peer started it: a member that moved on at once, on a disagreement, still
// counts the views of members that waited out the round before.
func (m *Matchmaker) startRound(now time.Duration, r int, view, probe []Member) []Outgoing {
	m.round = r
	m.roundEnd = m.closedAt + time.Duration(r+1)*m.cfg.ConfirmTimeout
	m.view = view
	m.mine = append(m.mine, view)
	m.got = map[string][]Member{m.cfg.Self: view}
	var out []Outgoing
	for _, x := range slices.Concat(view, probe) {
		if x.ID != m.cfg.Self {
			v := View{Run: m.cfg.Run, Epoch: m.cfg.Epoch, Round: r, Members: view}
			out = append(out, Outgoing{To: x.ID, Msg: Msg{View: &v}})
		}
	}
	early := m.pending[r]
	delete(m.pending, r)
	for _, from := range sortedKeys(early) { // deterministic, whatever the map order
		if m.hears(from) {
			m.got[from] = early[from]
		}
	}
	return append(out, m.checkRound(now)...)
}

// receiveView handles a peer's view of its group.
func (m *Matchmaker) receiveView(now time.Duration, from string, v View) ([]Outgoing, error) {
	if v.Run != m.cfg.Run || v.Epoch != m.cfg.Epoch {
		return nil, fmt.Errorf("view for %q epoch %d: %w", v.Run, v.Epoch, ErrWrongEpoch)
	}
	if _, ok := m.index.find(m.ready, from); !ok {
		return nil, fmt.Errorf("view from a peer that never announced: %w", ErrNotReady)
	}
	if err := m.checkView(from, v); err != nil {
		return nil, err
	}
	if m.done {
		// A formed peer tells a member still confirming what was formed.
		if m.err == nil && v.Round > m.formedAt && !v.Formed && contains(m.group.Members, from) {
			return []Outgoing{m.formedTo(from)}, nil
		}
		return nil, nil
	}
	if v.Formed {
		// Every member of a formed view sent it in that round, this peer
		// included: adopting it keeps the group's views identical.
		if v.Round < len(m.mine) && contains(v.Members, m.cfg.Self) && equal(m.mine[v.Round], v.Members) {
			return m.form(v.Round, v.Members), nil
		}
		return nil, nil
	}
	if !m.closed || v.Round > m.round {
		p := m.pending[v.Round]
		if p == nil {
			p = make(map[string][]Member)
			m.pending[v.Round] = p
		}
		if p[from] != nil {
			return nil, fmt.Errorf("view for round %d: %w", v.Round, ErrDuplicate)
		}
		p[from] = v.Members
		return nil, nil
	}
	if v.Round < m.round {
		return nil, nil // stale: that round is over
	}
	if !m.hears(from) {
		return nil, fmt.Errorf("view from a peer outside this peer's group: %w", ErrNotReady)
	}
	if m.got[from] != nil {
		return nil, fmt.Errorf("view for round %d: %w", v.Round, ErrDuplicate)
	}
	m.got[from] = v.Members
	return m.checkRound(now), nil
}

// checkView validates a view's shape: a round in range, at most MaxGroup
// valid members ordered by id without duplicates, the sender among them.
func (m *Matchmaker) checkView(from string, v View) error {
	if v.Round < 0 || v.Round >= m.cfg.MaxRounds {
		return fmt.Errorf("view for round %d, max %d: %w", v.Round, m.cfg.MaxRounds, ErrBadMessage)
	}
	if len(v.Members) == 0 || len(v.Members) > m.cfg.MaxGroup {
		return fmt.Errorf("view of %d members, max %d: %w", len(v.Members), m.cfg.MaxGroup, ErrBadMessage)
	}
	for i, x := range v.Members {
		if err := x.check(); err != nil {
			return fmt.Errorf("view: %w", err)
		}
		if i > 0 && strings.Compare(v.Members[i-1].ID, x.ID) >= 0 {
			return fmt.Errorf("view members not in id order at %q: %w", x.ID, ErrBadMessage)
		}
	}
	if !contains(v.Members, from) {
		return fmt.Errorf("view without its sender: %w", ErrBadMessage)
	}
	return nil
}

// checkRound forms the group once every member sent this round's view and
// all views are identical, and moves on at once when they differ. A peer
// waiting for a formed answer has no group to form (wait.go).
func (m *Matchmaker) checkRound(now time.Duration) []Outgoing {
	if m.waiting != nil || len(m.got) < len(m.view) {
		return nil
	}
	for _, v := range m.got {
		if !equal(v, m.view) {
			return m.advance(now)
		}
	}
	return m.form(m.round, m.view)
}

// advance ends the round without agreement: the next view is the
// intersection of this round's views, without the members that sent none
// and those whose view left this peer out. A peer that may be leaving out a
// group formed with it waits for an answer instead (wait.go).
func (m *Matchmaker) advance(now time.Duration) []Outgoing {
	if m.waiting != nil {
		return m.waitMore(now)
	}
	next, silent, differ := m.tally()
	formed := slices.ContainsFunc(silent, func(x Member) bool { return m.agreed[x.ID] })
	if !differ && len(silent) > 0 {
		if m.open == nil {
			m.open = m.view
		}
		for id, v := range m.got {
			if id != m.cfg.Self && equal(v, m.view) {
				m.agreed[id] = true
			}
		}
	}
	switch {
	case m.round+1 >= m.cfg.MaxRounds:
		return m.fail(fmt.Errorf("matchmaking: %s after %d rounds: %w", m.cfg.Self, m.round+1, ErrNoAgreement))
	case m.open != nil && (formed || len(next) < max(m.cfg.MinGroup, 2)):
		return m.wait(now, len(next))
	case len(next) < m.cfg.MinGroup:
		return m.fail(fmt.Errorf("matchmaking: %s: %d members agree, min %d: %w", m.cfg.Self, len(next), m.cfg.MinGroup, ErrBelowMin))
	}
	return m.startRound(now, m.round+1, next, silent)
}

// tally sorts this round's members: next holds this peer and those that
// sent a view with this peer in it and are in every such view; silent,
// those that sent nothing; differ says whether any view received differs
// from this peer's. This peer stays in next with its own values even when
// a view holds it with others (another announcement of it reached that
// member): a group without itself is none of its business, and that
// member's view will leave it out, or differ, until the two part.
func (m *Matchmaker) tally() (next, silent []Member, differ bool) {
	next = make([]Member, 0, len(m.view))
	for _, x := range m.view {
		v := m.got[x.ID]
		if v == nil {
			silent = append(silent, x)
			continue
		}
		differ = differ || !equal(v, m.view)
		if x.ID == m.cfg.Self {
			next = append(next, x)
			continue
		}
		in := contains(v, m.cfg.Self)
		for _, w := range m.got {
			in = in && (!contains(w, m.cfg.Self) || slices.Contains(w, x))
		}
		if in {
			next = append(next, x)
		}
	}
	return next, silent, differ
}

// form ends matchmaking with an agreed view, and answers the members whose
// views for later rounds came before it: they have not formed, and this
// peer sends no more views.
func (m *Matchmaker) form(round int, members []Member) []Outgoing {
	m.done = true
	m.formedAt = round
	m.group = NewGroup(m.cfg.Run, m.cfg.Epoch, members)
	later := make(map[string][]Member)
	if m.round > round {
		maps.Copy(later, m.got)
	}
	for r, views := range m.pending {
		if r > round {
			maps.Copy(later, views)
		}
	}
	var out []Outgoing
	for _, from := range sortedKeys(later) {
		if from != m.cfg.Self && contains(members, from) {
			out = append(out, m.formedTo(from))
		}
	}
	return out
}

// formedTo tells a member what this peer formed.
func (m *Matchmaker) formedTo(id string) Outgoing {
	f := View{Run: m.cfg.Run, Epoch: m.cfg.Epoch, Round: m.formedAt, Formed: true, Members: m.group.Members}
	return Outgoing{To: id, Msg: Msg{View: &f}}
}

// hears reports whether this round takes a view from peer id: a member of
// this peer's view, or one it waits on for a formed answer.
func (m *Matchmaker) hears(id string) bool { return contains(m.view, id) || contains(m.waiting, id) }

func equal(a, b []Member) bool { return slices.Equal(a, b) }

func sortedKeys(views map[string][]Member) []string {
	return slices.Sorted(maps.Keys(views))
}
