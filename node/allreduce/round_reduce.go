package allreduce

import (
	"errors"
	"fmt"
	"time"
)

// spanOwner is the reduction state of one span this member owns: its
// original span, or one it took over from a lost owner.
type spanOwner struct {
	got      [][]bool        // [member][part] received
	missing  []int           // parts still missing per contributor
	last     []time.Duration // last progress per contributor
	values   [][]float32     // decoded span values per contributor
	rejected []bool          // contributors excluded for a Fault (round_commit.go)
	reportBy time.Duration   // when it reports whatever it has
	sent     []uint64        // [part] the set its mean was sent over, 0 if none
	reported bool
	gathered bool // every part sent over the agreed set; values freed
}

// startOwner prepares the reduction of span k from now on; this member's
// own contribution, if any, is local and complete from the start.
func (r *Round) startOwner(now time.Duration, k int, reportBy time.Duration) *spanOwner {
	n := len(r.cfg.Group.Members)
	o := &spanOwner{
		got: make([][]bool, n), missing: make([]int, n), last: make([]time.Duration, n),
		values: make([][]float32, n), reportBy: reportBy, sent: make([]uint64, r.parts[k]),
		rejected: make([]bool, n),
	}
	s := r.cfg.Spans[k]
	for i, m := range r.cfg.Group.Members {
		if !m.Role.contributes() {
			continue
		}
		o.last[i] = now
		if i == r.cfg.Self {
			o.values[i] = r.ownValues(s)
			continue
		}
		o.got[i] = make([]bool, r.parts[k])
		o.missing[i] = r.parts[k]
	}
	r.excludeUncommitted(k, o)
	r.own[k] = o
	return o
}

// receiveContribution checks and buffers one reduce-scatter part. A part
// for a span this member would own after the current owner is taken as
// word that the owners before it are lost.
func (r *Round) receiveContribution(now time.Duration, from int, m PartMsg) ([]Outgoing, error) {
	if m.Span < 0 || m.Span >= len(r.cfg.Spans) {
		return nil, fmt.Errorf("reduce-scatter part for span %d of %d", m.Span, len(r.cfg.Spans))
	}
	var out []Outgoing
	if r.own[m.Span] == nil && r.parts[m.Span] > 0 && r.chainPos(m.Span, r.cfg.Self) > r.chainPos(m.Span, r.ownerOf[m.Span]) {
		out = r.advanceTo(now, m.Span, r.cfg.Self)
	}
	o := r.own[m.Span]
	if o == nil {
		return out, fmt.Errorf("reduce-scatter part for span %d, which this member does not own", m.Span)
	}
	if o.gathered || (o.reported && !r.agreed) {
		return out, errors.New("reduce-scatter part after this owner reported")
	}
	sender := r.cfg.Group.Members[from]
	if !sender.Role.contributes() {
		return out, fmt.Errorf("reduce-scatter part from a member with role %v", sender.Role)
	}
	if o.rejected[from] {
		return out, fmt.Errorf("reduce-scatter part from member %d, excluded from span %d for a fault", from, m.Span)
	}
	if m.Weight != sender.Weight {
		return out, fmt.Errorf("weight %v, the group says %v", m.Weight, sender.Weight)
	}
	if err := r.checkPart(m); err != nil {
		return out, err
	}
	if o.got[from][m.Part] {
		return out, fmt.Errorf("duplicate reduce-scatter part %d", m.Part)
	}
	s := r.cfg.Spans[m.Span]
	if o.values[from] == nil {
		o.values[from] = make([]float32, s.Len())
	}
	lo, hi := r.partRange(m.Span, m.Part)
	dst := o.values[from][lo-s.Begin : hi-s.Begin]
	if r.cfg.Commit.on() {
		if err := r.checkCommitted(dst, from, m); err != nil {
			return append(out, r.reject(now, m.Span, from, Fault{Member: from, Span: m.Span, Part: m.Part, Err: err})...), err
		}
	} else if err := r.cfg.Codec.Decode(dst, m.Payload); err != nil {
		// A part that fails to decode stays missing, so what Decode left
		// in the buffer is overwritten by a good copy or never used.
		return out, err
	}
	o.got[from][m.Part] = true
	o.missing[from]--
	o.last[from] = now
	if !r.agreed || o.reported {
		out = append(out, r.gatherPart(m.Span, m.Part)...)
	}
	return out, nil
}

// checkPart checks what every part must satisfy: the round's codec and a
// part index inside its span.
func (r *Round) checkPart(m PartMsg) error {
	if m.Codec != r.cfg.Codec.ID() {
		return fmt.Errorf("part encoded with %v, the round uses %v", m.Codec, r.cfg.Codec.ID())
	}
	if m.Part < 0 || m.Part >= r.parts[m.Span] {
		return fmt.Errorf("part %d outside span %d's %d parts", m.Part, m.Span, r.parts[m.Span])
	}
	return nil
}

// maybeReport sends the report of every owned span whose contributors'
// parts are all in, or whose report deadline has passed, or whose every
// contributor still missing parts has stalled (sent nothing for
// PartTimeout, or is believed lost: a lost owner's values of its own span
// died with it, so its replacement does not wait for them). A reducer the
// report leaves out for stalling is declared lost first (suspectStalled).
// A replacement owner holding the lost owner's report reports that same
// set when it received all of it, so members that agreed on it stay agreed.
func (r *Round) maybeReport(now time.Duration) []Outgoing {
	var out []Outgoing
	for k, o := range r.own {
		if o == nil || o.reported {
			continue
		}
		complete, stalled := true, true
		for i, left := range o.missing {
			if left > 0 {
				complete = false
				stalled = stalled && r.stalled(now, o, i)
			}
		}
		if !complete && !stalled && now < o.reportBy {
			continue
		}
		out = append(out, r.suspectStalled(now, o)...)
		o.reported = true
		var have []int
		for i, m := range r.cfg.Group.Members {
			if m.Role.contributes() && o.missing[i] == 0 {
				have = append(have, i)
			}
		}
		if prior := r.lostReport[k]; prior != nil && subset(prior, have) {
			have = prior
		}
		r.reports[k], r.haveReport[k], r.reportFrom[k] = have, true, r.cfg.Self
		out = append(out, r.broadcast(ReportMsg{Span: k, Have: have})...)
	}
	return out
}

// stalled reports whether contributor i's parts of owned span o stopped
// coming: nothing for PartTimeout, or i is believed lost, or it was
// rejected for a fault.
func (r *Round) stalled(now time.Duration, o *spanOwner, i int) bool {
	return r.lost[i] || o.rejected[i] || (r.cfg.PartTimeout > 0 && now-o.last[i] >= r.cfg.PartTimeout)
}

// suspectStalled declares lost every reducer whose parts of owned span o
// stalled, when some other member's parts all came (so the silence is the
// reducer's, not this member's link), and returns the LostMsgs, which go
// out before the report that leaves the reducer out. Its own span would
// otherwise wait for the reduce deadline and a slack, which may leave no
// time to re-reduce it. The report excludes the reducer from the agreed
// set, so the suspicion, even if false, costs only a re-reduction.
func (r *Round) suspectStalled(now time.Duration, o *spanOwner) []Outgoing {
	heard := false
	for i, left := range o.missing {
		heard = heard || (i != r.cfg.Self && o.got[i] != nil && left == 0)
	}
	if !heard {
		return nil
	}
	var out []Outgoing
	for i, left := range o.missing {
		if left == 0 || r.lost[i] || !r.cfg.Group.Members[i].Role.Reduces() || !r.stalled(now, o, i) {
			continue
		}
		out = append(out, r.broadcast(LostMsg{Span: r.spanOf[i], Owner: i})...)
		out = append(out, r.markLost(now, i)...)
	}
	return out
}

// broadcast sends msg to every other member.
func (r *Round) broadcast(msg Msg) []Outgoing {
	var out []Outgoing
	for i := range r.cfg.Group.Members {
		if i != r.cfg.Self {
			out = append(out, Outgoing{To: i, Msg: msg})
		}
	}
	return out
}

func subset(a, b []int) bool {
	in := make(map[int]bool, len(b))
	for _, x := range b {
		in[x] = true
	}
	for _, x := range a {
		if !in[x] {
			return false
		}
	}
	return true
}

func sameSet(a, b []int) bool {
	return len(a) == len(b) && subset(a, b)
}

// receiveReport checks and records the report of span m.Span's owner. A
// report from a later owner in the span's chain means the earlier ones are
// lost. Once this member has agreed, a replacement's report is accepted
// only if it equals the one agreed on; otherwise the span stays lost here.
func (r *Round) receiveReport(now time.Duration, from int, m ReportMsg) ([]Outgoing, error) {
	k := m.Span
	if k < 0 || k >= len(r.cfg.Spans) || r.parts[k] == 0 {
		return nil, fmt.Errorf("report for span %d, not a non-empty span", k)
	}
	out, err := r.checkOwner(now, k, from)
	if err != nil {
		return out, err
	}
	prev := -1
	for _, c := range m.Have {
		if c <= prev || c >= len(r.cfg.Group.Members) || !r.cfg.Group.Members[c].Role.contributes() {
			return out, fmt.Errorf("report lists %v: want ascending indices of contributing members", m.Have)
		}
		prev = c
	}
	switch {
	case r.haveReport[k] && r.reportFrom[k] == from:
		return out, fmt.Errorf("second report for span %d", k)
	case r.haveReport[k] && !sameSet(r.reports[k], m.Have):
		return out, fmt.Errorf("report %v for span %d differs from the agreed %v", m.Have, k, r.reports[k])
	}
	r.reports[k], r.haveReport[k], r.reportFrom[k] = append([]int(nil), m.Have...), true, from
	return out, nil
}

// checkOwner accepts from as span k's owner: the current one, or a later
// one in the chain, which makes the owners before it lost.
func (r *Round) checkOwner(now time.Duration, k, from int) ([]Outgoing, error) {
	pos, cur := r.chainPos(k, from), r.chainPos(k, r.ownerOf[k])
	switch {
	case pos < 0:
		return nil, fmt.Errorf("span %d message from member %d, which cannot own it", k, from)
	case pos < cur || r.ownerOf[k] < 0 || r.lost[from]:
		return nil, fmt.Errorf("span %d message from member %d, an owner already lost", k, from)
	case pos > cur:
		return r.advanceTo(now, k, from), nil
	}
	return nil, nil
}
