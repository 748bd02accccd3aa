package matchmaking

import (
	"errors"
	"fmt"
	"math"

	"github.com/dtrain-dev/dtrain/node/allreduce"
)

// Role is what a member does in an all-reduce round: the all-reduce's own
// type, so a formed group passes to a round as it is.
type Role = allreduce.Role

// The roles, as allreduce names them.
const (
	Full   = allreduce.RoleFull   // contributes its vector and reduces a span
	Aux    = allreduce.RoleAux    // reduces a span but contributes weight 0
	Client = allreduce.RoleClient // contributes but cannot accept connections, so reduces nothing
)

// Ready announces that a peer is ready to average for (Run, Epoch).
type Ready struct {
	Run       string
	Epoch     uint64
	Peer      string
	Role      Role
	Weight    float64 // samples behind the peer's contribution; 0 for aux
	Bandwidth float64 // measured bytes/s; 0 when unmeasured
	// Commit is the root of the peer's encoded contribution in the scope
	// (Run, Epoch, Peer) (allreduce.Contribution.Root), fixed before any
	// group forms; zero when it commits to nothing, always for aux.
	Commit allreduce.Root `json:",omitzero"`
}

// Member is one peer of a group, as every member agrees on it: its Commit
// is part of every view, so a group forms only when all its members hold
// the same root for each of them.
type Member struct {
	ID        string
	Role      Role
	Weight    float64
	Bandwidth float64
	Commit    allreduce.Root `json:",omitzero"`
}

// Sentinel errors that callers branch on.
var (
	// ErrBadMessage marks a malformed announcement or view.
	ErrBadMessage = errors.New("matchmaking: bad message")
	// ErrWrongEpoch marks a message for another run or epoch.
	ErrWrongEpoch = errors.New("matchmaking: wrong run or epoch")
	// ErrDuplicate marks a second, different announcement from one peer, or
	// a second view from one peer in one round. An identical announcement
	// (a gossip echo) is ignored without error.
	ErrDuplicate = errors.New("matchmaking: duplicate")
	// ErrLate marks an announcement that arrived after the deadline.
	ErrLate = errors.New("matchmaking: announcement after the deadline")
	// ErrNotReady marks a view from a peer that is not in the group.
	ErrNotReady = errors.New("matchmaking: peer not ready or not in the group")
	// ErrBelowMin is Group's error when the group would be below min size.
	ErrBelowMin = errors.New("matchmaking: group below min size")
	// ErrNoGroup is Group's error for a peer left over by the partition
	// (too few peers for another group of min size): retry next epoch.
	ErrNoGroup = errors.New("matchmaking: no group this epoch")
	// ErrNoAgreement is Group's error when the members' views never agreed.
	ErrNoAgreement = errors.New("matchmaking: members did not agree on the group")
	// ErrUntrustedAux marks an aux announcement from a peer the run does
	// not trust as a validator (Config.Validators).
	ErrUntrustedAux = errors.New("matchmaking: aux from a peer that is not a trusted validator")
	// ErrExcluded marks a contributor's announcement from a peer the
	// run's validators exclude from groups (Config.Excluded).
	ErrExcluded = errors.New("matchmaking: announcement from a peer the validators exclude")
	// ErrWeight marks a contributor's announcement of more samples than
	// an epoch of the run's schedule holds (Config.MaxWeight).
	ErrWeight = errors.New("matchmaking: announced weight above the run's bound")
	// ErrPending is Group's error before the Matchmaker is done.
	ErrPending = errors.New("matchmaking: not done")
)

// check validates an announcement for run and epoch.
func (r Ready) check(run string, epoch uint64) error {
	if r.Run != run || r.Epoch != epoch {
		return fmt.Errorf("ready from %q for %q epoch %d, want %q epoch %d: %w",
			r.Peer, r.Run, r.Epoch, run, epoch, ErrWrongEpoch)
	}
	return r.member().check()
}

func (r Ready) member() Member {
	return Member{ID: r.Peer, Role: r.Role, Weight: r.Weight, Bandwidth: r.Bandwidth, Commit: r.Commit}
}

// check validates a member's fields.
func (m Member) check() error {
	switch {
	case m.ID == "":
		return fmt.Errorf("empty peer id: %w", ErrBadMessage)
	case m.Role > Client:
		return fmt.Errorf("peer %q: unknown role %d: %w", m.ID, int(m.Role), ErrBadMessage)
	case !finiteNonNeg(m.Weight) || !finiteNonNeg(m.Bandwidth):
		return fmt.Errorf("peer %q: weight %v, bandwidth %v: want finite and >= 0: %w",
			m.ID, m.Weight, m.Bandwidth, ErrBadMessage)
	case m.Role == Aux && m.Weight != 0:
		return fmt.Errorf("peer %q: aux with weight %v, want 0: %w", m.ID, m.Weight, ErrBadMessage)
	case m.Role == Aux && !m.Commit.IsZero():
		return fmt.Errorf("peer %q: aux with a commitment, but it contributes nothing: %w", m.ID, ErrBadMessage)
	}
	return nil
}

func finiteNonNeg(x float64) bool { return x >= 0 && !math.IsInf(x, 1) }
