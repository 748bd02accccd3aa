package allreduce

import (
	"fmt"
	"slices"
	"time"
)

// A span whose owner is lost is re-reduced by a replacement. Span k's chain
// is every reducing member in member order, starting at k's original owner
// and wrapping around; its current owner is the first member of the chain
// not believed lost. Every member derives the same owner from the same lost
// set, and the set spreads three ways: a member that times out on an owner
// (no report by its deadline, or all-gather parts stalled for the slack),
// or an owner whose report leaves out a reducer whose parts stalled,
// broadcasts a LostMsg; a member that receives a LostMsg accepts it
// unchecked, since a false suspicion only costs a re-reduction; and any
// message about span k from a later member of k's chain (a report, a
// gathered part, a contribution sent to it) means the members before it are
// lost. On losing an owner every contributor resends its values of the span
// to the replacement, which reduces, reports and gathers the span as the
// original owner would have, without waiting for the lost owner's values.
// A lost owner's own contribution counts if every owner's report lists it:
// it was fully received before it failed. But an owner lost after
// agreement whose own contribution is in the agreed set cannot be replaced
// (its values of its span died with it): members that already hold its
// span finish, the others fail with ErrSpanLost. TimeoutsFor gives a round
// the time for all this.

// chainPos is member x's position in span k's chain, or -1.
func (r *Round) chainPos(k, x int) int {
	if x < 0 {
		return len(r.cfg.Group.Members)
	}
	n := len(r.cfg.Group.Members)
	first := r.cfg.Spans[k].Peer
	pos := 0
	for d := 0; d < n; d++ {
		i := (first + d) % n
		if !r.cfg.Group.Members[i].Role.Reduces() {
			continue
		}
		if i == x {
			return pos
		}
		pos++
	}
	return -1
}

// liveOwner is span k's first chain member not believed lost, or -1.
func (r *Round) liveOwner(k int) int {
	n := len(r.cfg.Group.Members)
	first := r.cfg.Spans[k].Peer
	for d := 0; d < n; d++ {
		i := (first + d) % n
		if r.cfg.Group.Members[i].Role.Reduces() && !r.lost[i] {
			return i
		}
	}
	return -1
}

// advanceTo marks every member of span k's chain before x lost; nothing if
// x is itself believed lost.
func (r *Round) advanceTo(now time.Duration, k, x int) []Outgoing {
	if r.lost[x] {
		return nil
	}
	var out []Outgoing
	for o := r.ownerOf[k]; o >= 0 && o != x; o = r.ownerOf[k] {
		out = append(out, r.markLost(now, o)...)
	}
	return out
}

// markLost records that member x is lost and moves every span it owned to
// its replacement: this member resends its values of the span there, or
// takes the span over itself. Before agreement x's report is dropped;
// after it, it stays, and the replacement must report the same set.
func (r *Round) markLost(now time.Duration, x int) []Outgoing {
	if r.lost[x] {
		return nil
	}
	r.lost[x] = true
	var out []Outgoing
	for k := range r.cfg.Spans {
		if r.parts[k] == 0 || r.ownerOf[k] != x {
			continue
		}
		next := r.liveOwner(k)
		if r.agreed && slices.Contains(r.contributors, x) {
			// x's own values of span k died with it, so no replacement
			// can average over the agreed set: the span is lost here.
			next = -1
		}
		r.ownerOf[k], r.ownerSince[k] = next, now
		if x == r.cfg.Self {
			r.own[k] = nil
		}
		if r.haveReport[k] && r.reportFrom[k] == x {
			r.lostReport[k] = r.reports[k]
			if !r.agreed {
				// Its gathered parts stay: each names its set, and a
				// replacement's mean over that set is the same.
				r.haveReport[k], r.reports[k], r.reportFrom[k] = false, nil, -1
			}
		}
		switch {
		case next < 0:
		case next == r.cfg.Self:
			out = append(out, r.takeOver(now, k)...)
		case r.cfg.Group.Members[r.cfg.Self].Role.contributes():
			out = append(out, r.resend(k, next)...)
		}
	}
	return out
}

// takeOver makes this member span k's owner. After agreement it reports
// the agreed report at once and gathers once the agreed contributors'
// values are in.
func (r *Round) takeOver(now time.Duration, k int) []Outgoing {
	o := r.startOwner(now, k, now+r.cfg.Slack())
	if !r.agreed {
		return nil
	}
	o.reported = true
	r.reportFrom[k] = r.cfg.Self
	out := r.broadcast(ReportMsg{Span: k, Have: r.reports[k]})
	return append(out, r.maybeGather(k)...)
}

// resend sends this member's values of span k to its new owner to.
func (r *Round) resend(k, to int) []Outgoing {
	var out []Outgoing
	for p := 0; p < r.parts[k]; p++ {
		out = append(out, Outgoing{To: to, Msg: r.contributionMsg(k, p)})
	}
	return out
}

// receiveLost accepts a LostMsg.
func (r *Round) receiveLost(now time.Duration, m LostMsg) ([]Outgoing, error) {
	if m.Span < 0 || m.Span >= len(r.cfg.Spans) || m.Owner < 0 || m.Owner >= len(r.cfg.Group.Members) {
		return nil, fmt.Errorf("lost message for span %d, member %d: out of range", m.Span, m.Owner)
	}
	return r.markLost(now, m.Owner), nil
}

// detectLost times out the owners this member waits on: a report not in
// by its deadline (the reduce deadline for an original owner, the slack
// after takeover for a replacement, plus the slack), or, after agreement,
// all-gather parts stalled for the slack.
func (r *Round) detectLost(now time.Duration) []Outgoing {
	var out []Outgoing
	for k := range r.cfg.Spans {
		x := r.ownerOf[k]
		if r.parts[k] == 0 || x < 0 || x == r.cfg.Self {
			continue
		}
		var late bool
		if !r.haveReport[k] || r.reportFrom[k] != x {
			by := r.start + r.cfg.reduceBy()
			if x != r.cfg.Spans[k].Peer {
				by = r.ownerSince[k] + r.cfg.Slack()
			}
			late = now >= by+r.cfg.Slack()
		} else if r.agreed && r.result != nil && r.gatherGot[k] < r.parts[k] {
			late = now-max(r.agreedAt, r.lastGather[k], r.ownerSince[k]) >= r.cfg.Slack()
		}
		if late {
			out = append(out, r.broadcast(LostMsg{Span: k, Owner: x})...)
			out = append(out, r.markLost(now, x)...)
		}
	}
	return out
}
