package allreduce

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// A committed round (commit.go) checks every contributor's part against the
// contributor's agreed root before decoding it. A part that fails, or whose
// committed bytes do not decode, is a Fault: the owner takes nothing more
// from that member for the span and does not wait for it, so its report
// leaves the member out and the agreement excludes it from every span; a
// member that reduces is also declared lost (LostMsg), so the spans it
// holds move to the next reducer rather than trusting a proven cheat with
// the others' values. A contributor that announced no root cannot be
// checked and is excluded the same way from the start. The round then ends
// with the exact mean of the other contributors, or fails cleanly (a
// member in the agreed set caught by a replacement owner after agreement
// leaves that span lost), never with a partial average.

// CommitConfig makes a round committed when Chunk > 0: Run and Epoch are
// the scope its members' roots are bound to (with each member's ID), Chunk
// their chunk size in elements.
type CommitConfig struct {
	Run   string
	Epoch uint64
	Chunk int
}

func (c CommitConfig) on() bool { return c.Chunk > 0 }

func (c CommitConfig) scope(member string) CommitScope {
	return CommitScope{Run: c.Run, Epoch: c.Epoch, Member: member}
}

// ErrNoCommitment marks a contributor that announced no root in a
// committed round: its parts cannot be checked, so none is taken.
var ErrNoCommitment = errors.New("allreduce: no commitment")

// Fault is a contribution this member, as the owner of span Span, proved is
// not what member Member committed to: part Part did not match its root
// (Err wraps ErrCommitMismatch) or its committed bytes do not decode
// (ErrBadEncoding); or the member committed to nothing (Part -1,
// ErrNoCommitment). A validator owning a span reads them to score members.
type Fault struct {
	Member int
	Span   int
	Part   int
	Err    error
}

// Faults returns the faults this member found as an owner, in the order
// found.
func (r *Round) Faults() []Fault { return slices.Clone(r.faults) }

// AlignSpans moves every boundary between consecutive spans to the nearest
// multiple of chunk, at most n, so that a committed round's spans start on
// chunk boundaries; the first span still starts at 0 and the last ends at
// n. A boundary moves by at most chunk/2, so a span grows or shrinks by at
// most chunk elements, and a span smaller than that may become empty.
func AlignSpans(spans []Span, chunk, n int) []Span {
	out := slices.Clone(spans)
	if chunk <= 1 {
		return out
	}
	for k := 1; k < len(out); k++ {
		b := min((out[k].Begin+chunk/2)/chunk*chunk, n)
		out[k-1].End, out[k].Begin = b, b
	}
	return out
}

// layout is the layout every contributor of a committed round commits with.
func (c *RoundConfig) layout() CommitLayout {
	return CommitLayout{Codec: c.Codec.ID(), Len: c.Len, Chunk: c.Commit.Chunk}
}

// validateCommit checks the commitment settings: consistent with the
// layout, and this member's contribution matching its announced root.
func (c *RoundConfig) validateCommit() error {
	ms := c.Group.Members
	if !c.Commit.on() {
		if c.Contribution != nil {
			return errors.New("a contribution for a round that is not committed")
		}
		for i, m := range ms {
			if !m.Commit.IsZero() {
				return fmt.Errorf("member %d announces a root for a round that is not committed", i)
			}
		}
		return nil
	}
	l := c.layout()
	if err := l.Check(); err != nil {
		return err
	}
	if c.PartSize%l.Chunk != 0 {
		return fmt.Errorf("part size %d is not a multiple of the commit chunk %d", c.PartSize, l.Chunk)
	}
	for k, s := range c.Spans {
		if s.Begin%l.Chunk != 0 && s.Begin != c.Len {
			return fmt.Errorf("span %d starts at %d, not on a chunk of %d (AlignSpans)", k, s.Begin, l.Chunk)
		}
	}
	for i, m := range ms {
		if m.Role == RoleAux && !m.Commit.IsZero() {
			return fmt.Errorf("member %d (aux) announces a root, but contributes nothing", i)
		}
	}
	self := ms[c.Self]
	switch {
	case !self.Role.contributes():
		if c.Contribution != nil {
			return errors.New("a contribution for an aux member")
		}
	case c.Vector != nil || c.Feedback != nil:
		return errors.New("a committed round sends its Contribution: Vector and Feedback must be nil")
	case c.Contribution == nil:
		return errors.New("a committed round without this member's contribution")
	case c.Contribution.Layout() != l:
		return fmt.Errorf("contribution laid out as %+v, the round as %+v", c.Contribution.Layout(), l)
	case c.Contribution.Root(c.Commit.scope(self.ID)) != self.Commit:
		return fmt.Errorf("contribution's root %v, the group holds %v for this member", c.Contribution.Root(c.Commit.scope(self.ID)), self.Commit)
	}
	return nil
}

// maxProof is the longest range proof a part of a round of c carries.
func (c *RoundConfig) maxProof() int {
	if !c.Commit.on() || c.Len < 1 {
		return 0
	}
	return 2 * treeDepth(c.layout().Chunks())
}

// partChunks is the chunk range of element range [lo, hi) of a committed
// round, both ends on chunk boundaries (or Len).
func (r *Round) partChunks(lo, hi int) (first, count int) {
	ch := r.cfg.Commit.Chunk
	return lo / ch, (hi - lo + ch - 1) / ch
}

// contributionMsg is this member's reduce-scatter part p of span k.
func (r *Round) contributionMsg(k, p int) PartMsg {
	m := PartMsg{
		Phase: ReduceScatter, Span: k, Part: p, Codec: r.cfg.Codec.ID(),
		Weight: r.cfg.Group.Members[r.cfg.Self].Weight,
	}
	if c := r.cfg.Contribution; c != nil {
		// The range is inside the contribution: spans and parts are
		// validated to be whole chunks of it.
		m.Payload, m.Proof, _ = c.Chunks(r.partChunks(r.partRange(k, p)))
		return m
	}
	m.Payload = r.contribution(k, p)
	return m
}

// ownValues is this member's contribution to span s when it owns s: its
// vector's values, or in a committed round its committed bytes decoded, so
// that it averages what it committed to as every other owner does.
func (r *Round) ownValues(s Span) []float32 {
	c := r.cfg.Contribution
	if c == nil {
		return r.cfg.Vector[s.Begin:s.End]
	}
	out := make([]float32, s.Len())
	first, count := r.partChunks(s.Begin, s.End)
	b, _, _ := c.Chunks(first, count)
	// Our own encoding of finite values decodes.
	_ = c.layout.decodeRange(out, b, first)
	return out
}

// excludeUncommitted marks, in a committed round, the contributors without
// a root as rejected by owned span k's reduction.
func (r *Round) excludeUncommitted(k int, o *spanOwner) {
	if !r.cfg.Commit.on() {
		return
	}
	for i, m := range r.cfg.Group.Members {
		if i != r.cfg.Self && m.Role.contributes() && m.Commit.IsZero() {
			o.rejected[i] = true
			r.faults = append(r.faults, Fault{Member: i, Span: k, Part: -1,
				Err: fmt.Errorf("member %s: %w", m.ID, ErrNoCommitment)})
		}
	}
}

// checkCommitted verifies part m from member from against its root and
// decodes it into dst; an error is a Fault of that member.
func (r *Round) checkCommitted(dst []float32, from int, m PartMsg) error {
	lo, hi := r.partRange(m.Span, m.Part)
	first, count := r.partChunks(lo, hi)
	// A valid proof of fewer or more chunks is no proof of this part.
	if blo, bhi := r.cfg.layout().ChunkRange(first, count); len(m.Payload) != bhi-blo {
		return fmt.Errorf("part %d of span %d: %d bytes, its %d chunks are %d: %w", m.Part, m.Span, len(m.Payload), count, bhi-blo, ErrCommitMismatch)
	}
	mb := r.cfg.Group.Members[from]
	if err := VerifyChunks(mb.Commit, r.cfg.Commit.scope(mb.ID), r.cfg.layout(), first, m.Payload, m.Proof); err != nil {
		return fmt.Errorf("part %d of span %d: %w", m.Part, m.Span, err)
	}
	if err := r.cfg.layout().decodeRange(dst, m.Payload, first); err != nil {
		return fmt.Errorf("part %d of span %d, as committed: %w", m.Part, m.Span, err)
	}
	return nil
}

// reject records member from's fault on owned span k and stops taking its
// parts there; a reducer is declared lost.
func (r *Round) reject(now time.Duration, k, from int, f Fault) []Outgoing {
	r.own[k].rejected[from] = true
	r.faults = append(r.faults, f)
	if !r.cfg.Group.Members[from].Role.Reduces() || r.lost[from] {
		return nil
	}
	out := r.broadcast(LostMsg{Span: r.spanOf[from], Owner: from})
	return append(out, r.markLost(now, from)...)
}
