package allreduce

import (
	"fmt"
	"math"
)

// Checking owners. A span's result is its owner's computation: no other
// member sees every contributor's values of the span, so an owner could
// send any mean it likes. In a committed round any member can check it
// at a sample: it fetches every contributor's committed chunks of a range
// with their proofs (p2p.FetchChunks checks them against the roots the
// group agreed on), recomputes the round's rule over their decoded values
// (Recompute) and compares the bits with the part it received (Sources
// says from whom). Every rule is deterministic, reading contributors in
// member order and accumulating in float64 with each product rounded
// before it is added (no fused multiply-add, which Go may emit on arm64),
// so an honest owner's part and the recomputation are the same bits on
// any machine.

// Source is one part of a finished round's result: its elements
// [Lo, Hi) of span Span and the member whose all-gather part the result
// holds there (the span's owner, or the replacement that took it over).
type Source struct {
	Span, Part, Lo, Hi, From int
}

// Sources lists the parts of the round's result and who sent each; nil
// unless the round ended with a result vector (an aux member has none).
func (r *Round) Sources() []Source {
	if !r.done || r.err != nil || r.result == nil {
		return nil
	}
	var out []Source
	for k := range r.cfg.Spans {
		for p := range r.parts[k] {
			lo, hi := r.partRange(k, p)
			out = append(out, Source{Span: k, Part: p, Lo: lo, Hi: hi, From: r.heldFrom[k][p]})
		}
	}
	return out
}

// CheckRange returns a range within part [lo, hi) that Recompute checks
// on its own, chosen by i: the whole part under CenteredClip, whose
// clipping takes the norm over the part, else its i-th commit chunk
// (modulo the part's chunks; the whole part when the round is not
// committed). The other rules work coordinate by coordinate.
func (c RoundConfig) CheckRange(lo, hi, i int) (int, int) {
	chunk := c.Commit.Chunk
	if c.Aggregation == CenteredClip || chunk <= 0 || hi <= lo {
		return lo, hi
	}
	first, end := lo/chunk, (hi+chunk-1)/chunk
	k := first + int(uint(i)%uint(end-first))
	return max(lo, k*chunk), min(hi, (k+1)*chunk)
}

// Recompute returns what a member holds of a range of the result when
// its owner is honest: the round's rule over values (values[j] is
// contributor contributors[j]'s decoded values of the range; contributors
// ascending member indices, the round's agreed set) with the members'
// weights, encoded and decoded through the round's codec as the owner's
// all-gather part is.
func (c RoundConfig) Recompute(contributors []int, values [][]float32) ([]float32, error) {
	if len(contributors) == 0 || len(values) != len(contributors) {
		return nil, fmt.Errorf("recompute: %d contributors, %d value runs", len(contributors), len(values))
	}
	n := len(values[0])
	weights := make([]float64, len(contributors))
	for j, m := range contributors {
		if m < 0 || m >= len(c.Group.Members) || !c.Group.Members[m].Role.contributes() {
			return nil, fmt.Errorf("recompute: member %d is no contributor", m)
		}
		if len(values[j]) != n {
			return nil, fmt.Errorf("recompute: %d values of member %d, want %d", len(values[j]), m, n)
		}
		if math.IsInf(codecMaxAbs(values[j]), 1) {
			return nil, fmt.Errorf("recompute: member %d's values are not finite", m)
		}
		weights[j] = c.Group.Members[m].Weight
	}
	mean := make([]float32, n)
	a := aggregator{rule: c.Aggregation}
	a.combine(mean, values, 0, weights)
	out := make([]float32, n)
	if err := c.Codec.Decode(out, c.Codec.Encode(nil, mean)); err != nil {
		return nil, fmt.Errorf("recompute: %w", err)
	}
	return out, nil
}

// DecodeChunks decodes the encoded chunks [first, first+count) of a
// contribution with layout l (as p2p.FetchChunks returns them): the values
// of elements [first·Chunk, min((first+count)·Chunk, Len)).
func (l CommitLayout) DecodeChunks(first, count int, b []byte) ([]float32, error) {
	if err := l.Check(); err != nil {
		return nil, fmt.Errorf("decode chunks: %w", err)
	}
	if first < 0 || count < 1 || first+count > l.Chunks() {
		return nil, fmt.Errorf("decode chunks [%d, +%d) of %d", first, count, l.Chunks())
	}
	if lo, hi := l.ChunkRange(first, count); len(b) != hi-lo {
		return nil, fmt.Errorf("decode chunks: %d bytes, want %d: %w", len(b), hi-lo, ErrBadEncoding)
	}
	out := make([]float32, min((first+count)*l.Chunk, l.Len)-first*l.Chunk)
	if err := l.decodeRange(out, b, first); err != nil {
		return nil, err
	}
	return out, nil
}
