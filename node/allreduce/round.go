package allreduce

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Role is what a member does in a round.
type Role byte

// The roles. A full member contributes its vector and owns a span; an aux
// member owns a span but contributes nothing (weight 0) and takes no result
// vector; a client contributes but owns nothing, since it cannot accept
// connections.
const (
	RoleFull Role = iota
	RoleAux
	RoleClient
)

// String names the role.
func (r Role) String() string {
	switch r {
	case RoleFull:
		return "full"
	case RoleAux:
		return "aux"
	case RoleClient:
		return "client"
	}
	return fmt.Sprintf("role(%d)", byte(r))
}

// Reduces reports whether a member in this role owns and reduces a span.
func (r Role) Reduces() bool { return r == RoleFull || r == RoleAux }

func (r Role) contributes() bool { return r == RoleFull || r == RoleClient }

// Member is one peer of a group. Weight is its sample count: the weight of
// its vector in the mean; it is 0 for aux members and > 0 otherwise.
// Commit is, in a committed round, the root of the contribution it
// announced (commit.go); zero otherwise, and always for aux members.
type Member struct {
	ID     string
	Role   Role
	Weight float64
	Commit Root
}

// Group is the members of one round in the order every member agreed on.
// Member indices in messages, spans and results refer to this order.
type Group struct {
	Members []Member
}

// Index returns the index of the member with the given ID, or -1.
func (g Group) Index(id string) int {
	for i, m := range g.Members {
		if m.ID == id {
			return i
		}
	}
	return -1
}

// RoundConfig is everything a Round needs; NewRound checks it.
type RoundConfig struct {
	Group Group
	Self  int // this peer's index in Group
	// Len is the vector length n; Vector is this peer's values, required
	// (length Len, finite) for contributors and ignored for aux members.
	// A committed round takes a contributor's values from Contribution
	// instead, and Vector and Feedback must be nil. The messages a round
	// returns may alias Vector: it must stay unchanged until they are sent.
	Len    int
	Vector []float32
	// Spans are the owners' ranges, one per reducing member in member order,
	// covering [0, Len) (SpansForRoles computes them).
	Spans    []Span
	PartSize int // elements per part, the unit of pipelining; DefaultPartSize unless measured otherwise
	Codec    Codec
	// Aggregation is how this member, as a span's owner, combines the
	// contributors' values (Mean unless the run asks for a robust rule;
	// every member of a group must use the same).
	Aggregation Aggregation
	// Feedback, optional for a contributor, is its error feedback for
	// Codec over the whole vector: its contributions are encoded through
	// it, and a part sent again to a replacement owner is the same bytes,
	// so the residual counts every part once. It must outlive the round
	// and be used by one round at a time.
	Feedback *ErrorFeedback
	// Commit makes the round a committed one when Commit.Chunk > 0: every
	// part a contributor sends is checked against its Member.Commit
	// (round_commit.go). Contribution is then this member's, if it
	// contributes: its Root in this round's scope must be its Member.Commit.
	Commit       CommitConfig
	Contribution *Contribution
	// PartTimeout is how long an owner waits for a contributor's next part
	// before excluding it (0: no per-part limit). ReduceTimeout, counted
	// from Start, is when an owner stops waiting for parts and reports what
	// it has (0: half the round). RoundTimeout, counted from Start, ends the
	// round: done, or failed cleanly. They must leave time to replace a
	// lost owner (reduce + 2×part <= round); TimeoutsFor splits a round so
	// that they do.
	PartTimeout   time.Duration
	ReduceTimeout time.Duration
	RoundTimeout  time.Duration
}

// SentBytes is what member Self sends in a round of c without failures: a
// contributor's values outside its own span to their owners, and an
// owner's mean of its span to every other contributor.
func (c RoundConfig) SentBytes() int64 {
	own := 0
	for _, s := range c.Spans {
		if s.Peer == c.Self {
			own = s.Len()
		}
	}
	others := 0
	for i, m := range c.Group.Members {
		if i != c.Self && m.Role.contributes() {
			others++
		}
	}
	var values int64
	if c.Group.Members[c.Self].Role.contributes() {
		values = int64(c.Codec.EncodedLen(c.Len - own))
	}
	return values + int64(others)*int64(c.Codec.EncodedLen(own))
}

// DefaultPartSize is the part size, in elements, that pipelined best in
// `dtrain bench allreduce` over shaped 200 Mbit/s links (4 peers, 64 MiB):
// 2¹⁶ (256 KiB of float32) reached 0.84–0.89 of the bound where 2¹⁸ reached
// 0.75–0.80, since the last part crosses twice (reduce-scatter, then
// all-gather) after everything else is done; 2¹⁴ was no better.
const DefaultPartSize = 1 << 16

// Result is a finished round: Vector is the weighted mean over exactly the
// members in Contributors (ascending member indices). Vector is nil on aux
// members, which take no result.
type Result struct {
	Vector       []float32
	Contributors []int
}

// Errors a round can end with; callers branch on them with errors.Is.
var (
	// ErrRoundNotDone is returned by Result before the round has ended.
	ErrRoundNotDone = errors.New("allreduce: round not done")
	// ErrSpanLost means some span's owner did not report or did not send
	// its averaged parts by the round deadline: the round must be retried.
	ErrSpanLost = errors.New("allreduce: span lost")
	// ErrNoContributors means no contributor's vector reached every owner.
	ErrNoContributors = errors.New("allreduce: no contributor fully received")
	// ErrBadMessage wraps every rejection of a peer's message.
	ErrBadMessage = errors.New("allreduce: bad message")
)

// validate checks the config and returns the number of parts of each span.
func (c *RoundConfig) validate() error {
	ms := c.Group.Members
	if len(ms) == 0 {
		return errors.New("empty group")
	}
	if c.Self < 0 || c.Self >= len(ms) {
		return fmt.Errorf("self index %d outside a group of %d", c.Self, len(ms))
	}
	seen := make(map[string]bool, len(ms))
	contributors := 0
	for i, m := range ms {
		if m.ID == "" || seen[m.ID] {
			return fmt.Errorf("member %d: empty or duplicate ID %q", i, m.ID)
		}
		seen[m.ID] = true
		if m.Role > RoleClient {
			return fmt.Errorf("member %d: unknown %v", i, m.Role)
		}
		w := m.Weight
		if m.Role.contributes() {
			contributors++
			if !(w > 0) || math.IsInf(w, 0) {
				return fmt.Errorf("member %d (%v): weight %v, want finite > 0", i, m.Role, w)
			}
		} else if w != 0 {
			return fmt.Errorf("member %d (aux): weight %v, want 0", i, w)
		}
	}
	if contributors == 0 {
		return errors.New("no contributing member")
	}
	if c.Len < 1 {
		return fmt.Errorf("vector length %d, want >= 1", c.Len)
	}
	if ms[c.Self].Role.contributes() && !c.Commit.on() {
		if len(c.Vector) != c.Len {
			return fmt.Errorf("local vector has %d values, want %d", len(c.Vector), c.Len)
		}
		if math.IsInf(codecMaxAbs(c.Vector), 1) {
			return errors.New("local vector holds NaN or Inf")
		}
	}
	if c.PartSize < 1 {
		return fmt.Errorf("part size %d, want >= 1", c.PartSize)
	}
	if c.Codec == nil {
		return errors.New("no codec")
	}
	if int(c.Aggregation) >= len(Aggregations) {
		return fmt.Errorf("unknown %v", c.Aggregation)
	}
	if f := c.Feedback; f != nil && (f.Codec().ID() != c.Codec.ID() || len(f.Residual()) != c.Len) {
		return fmt.Errorf("error feedback for %v over %d values, the round sends %v over %d",
			f.Codec().ID(), len(f.Residual()), c.Codec.ID(), c.Len)
	}
	if err := c.validateTimeouts(); err != nil {
		return err
	}
	if err := c.validateSpans(); err != nil {
		return err
	}
	return c.validateCommit()
}

func (c *RoundConfig) validateSpans() error {
	at, k := 0, 0
	for i, m := range c.Group.Members {
		if !m.Role.Reduces() {
			continue
		}
		if k >= len(c.Spans) {
			return fmt.Errorf("%d spans for more reducing members", len(c.Spans))
		}
		s := c.Spans[k]
		if s.Peer != i || s.Begin != at || s.End < s.Begin {
			return fmt.Errorf("span %d is %+v: want owner %d from %d", k, s, i, at)
		}
		at = s.End
		k++
	}
	if k != len(c.Spans) || at != c.Len {
		return fmt.Errorf("%d spans end at %d: want %d spans covering [0, %d)", len(c.Spans), at, k, c.Len)
	}
	return nil
}
