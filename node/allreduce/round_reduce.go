package allreduce

import (
	"errors"
	"fmt"
	"time"
)

// startOwner prepares the reduction of this member's span; its own
// contribution, if any, is local and complete from the start.
func (r *Round) startOwner(now time.Duration) {
	n := len(r.cfg.Group.Members)
	r.got = make([][]bool, n)
	r.missing = make([]int, n)
	r.last = make([]time.Duration, n)
	r.values = make([][]float32, n)
	s := r.cfg.Spans[r.mySpan]
	for i, m := range r.cfg.Group.Members {
		if !m.Role.contributes() {
			continue
		}
		r.last[i] = now
		if i == r.cfg.Self {
			r.values[i] = r.cfg.Vector[s.Begin:s.End]
			continue
		}
		r.got[i] = make([]bool, r.parts[r.mySpan])
		r.missing[i] = r.parts[r.mySpan]
	}
}

// receiveContribution checks and buffers one reduce-scatter part.
func (r *Round) receiveContribution(now time.Duration, from int, m PartMsg) error {
	if r.mySpan < 0 || m.Span != r.mySpan {
		return fmt.Errorf("reduce-scatter part for span %d, but this member owns span %d", m.Span, r.mySpan)
	}
	if r.reported {
		return errors.New("reduce-scatter part after this owner reported")
	}
	sender := r.cfg.Group.Members[from]
	if !sender.Role.contributes() {
		return fmt.Errorf("reduce-scatter part from a member with role %v", sender.Role)
	}
	if m.Weight != sender.Weight {
		return fmt.Errorf("weight %v, the group says %v", m.Weight, sender.Weight)
	}
	if err := r.checkPart(m); err != nil {
		return err
	}
	if r.got[from][m.Part] {
		return fmt.Errorf("duplicate reduce-scatter part %d", m.Part)
	}
	s := r.cfg.Spans[r.mySpan]
	if r.values[from] == nil {
		r.values[from] = make([]float32, s.Len())
	}
	lo, hi := r.partRange(r.mySpan, m.Part)
	// A part that fails to decode stays missing, so what Decode left in
	// the buffer is overwritten by a good copy or never used.
	if err := r.cfg.Codec.Decode(r.values[from][lo-s.Begin:hi-s.Begin], m.Payload); err != nil {
		return err
	}
	r.got[from][m.Part] = true
	r.missing[from]--
	r.last[from] = now
	return nil
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

// maybeReport sends this owner's report once every contributor's parts are
// in, or the reduce deadline has passed, or every contributor still missing
// parts has sent nothing for PartTimeout.
func (r *Round) maybeReport(now time.Duration) []Outgoing {
	if r.mySpan < 0 || r.reported {
		return nil
	}
	reduceBy := r.cfg.ReduceTimeout
	if reduceBy == 0 {
		reduceBy = r.cfg.RoundTimeout / 2
	}
	complete, stalled := true, true
	for i, left := range r.missing {
		if left > 0 {
			complete = false
			stalled = stalled && r.cfg.PartTimeout > 0 && now-r.last[i] >= r.cfg.PartTimeout
		}
	}
	if !complete && !stalled && now-r.start < reduceBy {
		return nil
	}
	r.reported = true
	var have []int
	for i, m := range r.cfg.Group.Members {
		if m.Role.contributes() && r.missing[i] == 0 {
			have = append(have, i)
		}
	}
	r.reports[r.mySpan], r.haveReport[r.mySpan] = have, true
	var out []Outgoing
	for i := range r.cfg.Group.Members {
		if i != r.cfg.Self {
			out = append(out, Outgoing{To: i, Msg: ReportMsg{Span: r.mySpan, Have: have}})
		}
	}
	return out
}

// receiveReport checks and records an owner's report.
func (r *Round) receiveReport(from int, m ReportMsg) error {
	k := r.spanOf[from]
	if k < 0 || m.Span != k || r.parts[k] == 0 {
		return fmt.Errorf("report for span %d from a member owning span %d", m.Span, k)
	}
	if r.haveReport[k] {
		return fmt.Errorf("second report for span %d", k)
	}
	prev := -1
	for _, c := range m.Have {
		if c <= prev || c >= len(r.cfg.Group.Members) || !r.cfg.Group.Members[c].Role.contributes() {
			return fmt.Errorf("report lists %v: want ascending indices of contributing members", m.Have)
		}
		prev = c
	}
	r.reports[k], r.haveReport[k] = append([]int(nil), m.Have...), true
	return nil
}

// maybeAgree fixes the contributors once every non-empty span has reported,
// and then, on an owner, averages its span and sends it to every member
// that takes a result.
func (r *Round) maybeAgree() []Outgoing {
	if r.agreed || r.done {
		return nil
	}
	count := make([]int, len(r.cfg.Group.Members))
	owners := 0
	for k := range r.cfg.Spans {
		if r.parts[k] == 0 {
			continue
		}
		if !r.haveReport[k] {
			return nil
		}
		owners++
		for _, c := range r.reports[k] {
			count[c]++
		}
	}
	var set []int
	for c, n := range count {
		if n == owners {
			set = append(set, c)
		}
	}
	if len(set) == 0 {
		r.done, r.err = true, fmt.Errorf("%w: owners' reports %v", ErrNoContributors, r.reports)
		return nil
	}
	r.agreed, r.contributors = true, set
	if r.mySpan < 0 {
		return nil
	}
	return r.gatherMine()
}

// gatherMine averages this owner's span over the agreed contributors and
// returns its parts for every member that takes a result. The sum runs in
// member order in float64, so the mean does not depend on arrival order and
// is the exact weighted mean rounded once to float32. The owner keeps what
// the others will decode, so all members hold the same vector.
func (r *Round) gatherMine() []Outgoing {
	k := r.mySpan
	s := r.cfg.Spans[k]
	var total float64
	for _, c := range r.contributors {
		total += r.cfg.Group.Members[c].Weight
	}
	mean := make([]float32, s.Len())
	for i := range mean {
		var acc float64
		for _, c := range r.contributors {
			acc += r.cfg.Group.Members[c].Weight * float64(r.values[c][i])
		}
		mean[i] = float32(acc / total)
	}
	var out []Outgoing
	for p := 0; p < r.parts[k]; p++ {
		lo, hi := r.partRange(k, p)
		payload := r.cfg.Codec.Encode(nil, mean[lo-s.Begin:hi-s.Begin])
		if r.result != nil {
			// Decoding our own encoding of finite values cannot fail.
			_ = r.cfg.Codec.Decode(r.result[lo:hi], payload)
		}
		r.gathered[k][p] = true
		for i, m := range r.cfg.Group.Members {
			if i != r.cfg.Self && m.Role.contributes() {
				out = append(out, Outgoing{To: i, Msg: PartMsg{
					Phase: AllGather, Span: k, Part: p, Codec: r.cfg.Codec.ID(), Payload: payload,
				}})
			}
		}
	}
	r.gatherGot[k] = r.parts[k]
	r.values = nil
	return out
}

// receiveGathered checks and stores one all-gather part.
func (r *Round) receiveGathered(from int, m PartMsg) error {
	if r.result == nil {
		return errors.New("all-gather part to an aux member, which takes no result")
	}
	if m.Span < 0 || m.Span >= len(r.cfg.Spans) || r.cfg.Spans[m.Span].Peer != from {
		return fmt.Errorf("all-gather part for span %d, which the sender does not own", m.Span)
	}
	if err := r.checkPart(m); err != nil {
		return err
	}
	if r.gathered[m.Span][m.Part] {
		return fmt.Errorf("duplicate all-gather part %d of span %d", m.Part, m.Span)
	}
	lo, hi := r.partRange(m.Span, m.Part)
	if err := r.cfg.Codec.Decode(r.result[lo:hi], m.Payload); err != nil {
		return err
	}
	r.gathered[m.Span][m.Part] = true
	r.gatherGot[m.Span]++
	return nil
}
