package allreduce

import (
	"errors"
	"fmt"
	"time"
)

// maybeAgree fixes the contributors once every non-empty span has reported,
// and then averages every span this member owns and sends it to every
// member that takes a result.
func (r *Round) maybeAgree(now time.Duration) []Outgoing {
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
	r.agreed, r.contributors, r.agreedAt = true, set, now
	var out []Outgoing
	for k := range r.own {
		out = append(out, r.maybeGather(k)...)
	}
	return out
}

// maybeGather averages owned span k once every agreed contributor's values
// are in and returns its parts for every member that takes a result. The
// sum runs in member order in float64, so the mean depends neither on
// arrival order nor on which owner computes it: it is the exact weighted
// mean rounded once to float32, and a replacement owner's parts equal the
// lost owner's bit for bit. The owner keeps what the others will decode,
// so all members hold the same vector.
func (r *Round) maybeGather(k int) []Outgoing {
	o := r.own[k]
	if o == nil || o.gathered || !o.reported {
		return nil
	}
	for _, c := range r.contributors {
		if o.values[c] == nil || (c != r.cfg.Self && o.missing[c] > 0) {
			return nil
		}
	}
	s := r.cfg.Spans[k]
	var total float64
	for _, c := range r.contributors {
		total += r.cfg.Group.Members[c].Weight
	}
	mean := make([]float32, s.Len())
	for i := range mean {
		var acc float64
		for _, c := range r.contributors {
			acc += r.cfg.Group.Members[c].Weight * float64(o.values[c][i])
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
	o.gathered, o.values = true, nil
	return out
}

// receiveGathered checks and stores one all-gather part. It is accepted
// only from the owner whose report for the span this member holds, so a
// mean over another contributor set is never mixed in. A part already held
// from a lost owner is skipped: the replacement's copy is identical.
func (r *Round) receiveGathered(now time.Duration, from int, m PartMsg) ([]Outgoing, error) {
	if r.result == nil {
		return nil, errors.New("all-gather part to an aux member, which takes no result")
	}
	if m.Span < 0 || m.Span >= len(r.cfg.Spans) || r.parts[m.Span] == 0 {
		return nil, fmt.Errorf("all-gather part for span %d, not a non-empty span", m.Span)
	}
	out, err := r.checkOwner(now, m.Span, from)
	if err != nil {
		return out, err
	}
	if !r.haveReport[m.Span] || r.reportFrom[m.Span] != from {
		return out, fmt.Errorf("all-gather part for span %d before its owner's report", m.Span)
	}
	if err := r.checkPart(m); err != nil {
		return out, err
	}
	if r.gathered[m.Span][m.Part] {
		if r.gatherSrc[m.Span][m.Part] == from {
			return out, fmt.Errorf("duplicate all-gather part %d of span %d", m.Part, m.Span)
		}
		return out, nil
	}
	lo, hi := r.partRange(m.Span, m.Part)
	if err := r.cfg.Codec.Decode(r.result[lo:hi], m.Payload); err != nil {
		return out, err
	}
	r.gathered[m.Span][m.Part] = true
	r.gatherSrc[m.Span][m.Part] = from
	r.gatherGot[m.Span]++
	r.lastGather[m.Span] = now
	return out, nil
}
