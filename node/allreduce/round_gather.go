package allreduce

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// All-gather is pipelined with reduce-scatter. An owner does not wait for
// the agreement before averaging: as soon as every contributor's values of
// a part are in, it sends the mean of that part over all the group's
// contributors, tagged with that set (SetHash). In the common round, where
// nobody fails, the agreement then confirms the set and nothing more is
// sent, so a slow member's upload and download overlap instead of taking
// turns. When the agreed set differs, every part not already averaged over
// it is averaged again and resent. A member uses a gathered part only if
// its set is the one agreed, so no part over another set is ever mixed in.

// SetHash names a contributor set (ascending member indices) in all-gather
// parts: FNV-1a over the indices. Two different sets of one group collide
// with probability 2⁻⁶⁴; 0 is never returned, so it can mean "no set".
func SetHash(set []int) uint64 {
	h := fnv.New64a()
	var b [4]byte
	for _, c := range set {
		b[0], b[1], b[2], b[3] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
		_, _ = h.Write(b[:])
	}
	if s := h.Sum64(); s != 0 {
		return s
	}
	return 1
}

// gatherSet is the set whose means this member collects and sends: the
// agreed one, or, before agreement, every contributing member.
func (r *Round) gatherSet() ([]int, uint64) {
	if r.agreed {
		return r.contributors, r.agreedHash
	}
	return r.fullSet, r.fullHash
}

// maybeAgree fixes the contributors once every non-empty span has reported,
// then keeps the gathered parts averaged over them, drops the others, and
// averages and sends what this member owns and has not yet sent over them.
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
	r.agreed, r.contributors, r.agreedHash, r.agreedAt = true, set, SetHash(set), now
	if r.agreedHash != r.fullHash {
		r.regather(now)
	}
	var out []Outgoing
	for k := range r.own {
		out = append(out, r.maybeGather(k)...)
	}
	return out
}

// regather drops every held part not averaged over the agreed set and takes
// the waiting parts that are.
func (r *Round) regather(now time.Duration) {
	for k := range r.held {
		for p, h := range r.held[k] {
			if h != 0 && h != r.agreedHash {
				r.held[k][p], r.heldFrom[k][p] = 0, -1
				r.gatherGot[k]--
			}
		}
	}
	for key, m := range r.early {
		if m.Set == r.agreedHash && r.held[key.span][key.part] == 0 {
			_ = r.store(now, key.from, m) // a bad payload leaves the part missing
		}
	}
	r.early = nil
}

// maybeGather averages and sends every part of owned span k that has all
// its contributors' values and has not been sent over the gather set yet.
// Before agreement that is optimistic; after it, once every part is sent
// over the agreed set, the owner frees the values.
func (r *Round) maybeGather(k int) []Outgoing {
	o := r.own[k]
	if o == nil || o.gathered || (r.agreed && !o.reported) {
		return nil
	}
	var out []Outgoing
	for p := range r.parts[k] {
		out = append(out, r.gatherPart(k, p)...)
	}
	return out
}

// gatherPart averages part p of owned span k over the gather set and
// returns it for every member that takes a result, if every value is in and
// it was not already sent over that set. The sum runs in member order in
// float64, so the mean depends neither on arrival order nor on which owner
// computes it: it is the exact weighted mean rounded once to float32, and a
// replacement owner's parts equal the lost owner's bit for bit. The owner
// keeps what the others will decode, so all members hold the same vector.
func (r *Round) gatherPart(k, p int) []Outgoing {
	o := r.own[k]
	set, hash := r.gatherSet()
	if o.sent[p] == hash {
		return nil
	}
	for _, c := range set {
		if o.values[c] == nil || (c != r.cfg.Self && !o.got[c][p]) {
			return nil
		}
	}
	s := r.cfg.Spans[k]
	lo, hi := r.partRange(k, p)
	vals, weights := make([][]float32, len(set)), make([]float64, len(set))
	for i, c := range set {
		vals[i], weights[i] = o.values[c], r.cfg.Group.Members[c].Weight
	}
	if cap(r.mean) < hi-lo {
		r.mean = make([]float32, r.cfg.PartSize)
	}
	mean := r.mean[:hi-lo]
	r.agg.combine(mean, vals, lo-s.Begin, weights)
	payload := r.cfg.Codec.Encode(nil, mean)
	o.sent[p] = hash
	if r.result != nil {
		// Decoding our own encoding of finite values cannot fail.
		_ = r.cfg.Codec.Decode(r.result[lo:hi], payload)
		if r.held[k][p] != hash {
			if r.held[k][p] == 0 {
				r.gatherGot[k]++
			}
			r.held[k][p], r.heldFrom[k][p] = hash, r.cfg.Self
		}
	}
	var out []Outgoing
	for i, m := range r.cfg.Group.Members {
		if i != r.cfg.Self && m.Role.contributes() {
			out = append(out, Outgoing{To: i, Msg: PartMsg{
				Phase: AllGather, Span: k, Part: p, Codec: r.cfg.Codec.ID(), Set: hash, Payload: payload,
			}})
		}
	}
	if r.agreed && r.allSent(o, hash) {
		o.gathered, o.values = true, nil
	}
	return out
}

func (r *Round) allSent(o *spanOwner, hash uint64) bool {
	for _, h := range o.sent {
		if h != hash {
			return false
		}
	}
	return true
}

// earlyPart keys an all-gather part that came before this member agreed,
// over a set other than every contributor.
type earlyPart struct{ span, part, from int }

// receiveGathered checks and stores one all-gather part from span m.Span's
// current owner (or a later one in its chain, which makes the earlier ones
// lost). A part over the gather set is decoded into the result; before
// agreement, a part over another set is held until the agreement says
// whether it counts (one per part and sender, so memory stays bounded by
// the vector); after agreement it is rejected. A part already held over the
// same set from another owner is skipped: the copies are identical.
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
	if err := r.checkPart(m); err != nil {
		return out, err
	}
	_, hash := r.gatherSet()
	if m.Set != hash {
		if r.agreed {
			return out, fmt.Errorf("all-gather part %d of span %d averages set %#x, the agreed set is %#x", m.Part, m.Span, m.Set, hash)
		}
		if r.early == nil {
			r.early = map[earlyPart]PartMsg{}
		}
		// Receive keeps no reference to a message's payload (a transport
		// reuses the buffer), so an early part keeps a copy.
		m.Payload = bytes.Clone(m.Payload)
		r.early[earlyPart{m.Span, m.Part, from}] = m
		return out, nil
	}
	if r.held[m.Span][m.Part] == hash {
		if r.heldFrom[m.Span][m.Part] == from {
			return out, fmt.Errorf("duplicate all-gather part %d of span %d", m.Part, m.Span)
		}
		return out, nil
	}
	return out, r.store(now, from, m)
}

// store decodes a gathered part over the gather set into the result.
func (r *Round) store(now time.Duration, from int, m PartMsg) error {
	lo, hi := r.partRange(m.Span, m.Part)
	if err := r.cfg.Codec.Decode(r.result[lo:hi], m.Payload); err != nil {
		return err
	}
	r.held[m.Span][m.Part], r.heldFrom[m.Span][m.Part] = m.Set, from
	r.gatherGot[m.Span]++
	r.lastGather[m.Span] = now
	return nil
}
