package matchmaking

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dtrain-dev/dtrain/node/allreduce"
)

// NewGroup is the group of members for run and epoch as matchmaking forms
// it: members ordered by id, and the key that names it. A group that was
// not matched over gossip (a benchmark's, a test's) is made here too, so
// every group reads the same.
func NewGroup(run string, epoch uint64, members []Member) Group {
	ms := slices.Clone(members)
	slices.SortStableFunc(ms, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return Group{Run: run, Epoch: epoch, Members: ms, Key: groupKey(run, epoch, ms)}
}

// RoundOptions are what a member adds to a formed group to run the group's
// all-reduce round.
type RoundOptions struct {
	// Len is the vector's length; 0 means len(vec), or the Contribution's
	// length. An aux member, which contributes no vector, must set it.
	Len   int
	Codec allreduce.Codec
	// Aggregation is the run's rule for combining a span's values
	// (allreduce.RoundConfig.Aggregation).
	Aggregation allreduce.Aggregation
	Feedback    *allreduce.ErrorFeedback // optional: see allreduce.RoundConfig
	PartSize    int                      // elements per part; 0 means allreduce.DefaultPartSize
	// Timeout is the round's deadline, split by allreduce.TimeoutsFor: an
	// owner waits an eighth of it for a contributor's next part and reports
	// by half of it, which leaves the time to replace a lost owner.
	Timeout time.Duration
	// CommitChunk > 0 makes the round committed (commit.go): the members'
	// announced roots are checked, over chunks of this many elements (the
	// run's constant; 0 with a Contribution means its chunk).
	// Contribution is this member's committed vector, which the round then
	// sends instead of vec, and Feedback is not used.
	CommitChunk  int
	Contribution *allreduce.Contribution
}

// RoundConfig is g's all-reduce round as member self runs it over vec: the
// members in the group's order with their roles and weights, and one span
// per reducing member (every member, in a group of clients only), sized by
// the bandwidths the members announced as SpanBandwidths bounds them.
func (g Group) RoundConfig(self string, vec []float32, o RoundOptions) (allreduce.RoundConfig, error) {
	n := len(g.Members)
	members := g.roundMembers()
	var ag allreduce.Group
	reduces, contributes := make([]bool, n), make([]bool, n)
	for i, mb := range members {
		ag.Members = append(ag.Members, allreduce.Member{ID: mb.ID, Role: mb.Role, Weight: mb.Weight})
		reduces[i], contributes[i] = mb.Role.Reduces(), mb.Role != Aux
	}
	at := ag.Index(self)
	if at < 0 {
		return allreduce.RoundConfig{}, fmt.Errorf("group %s does not hold %s", g.Key, self)
	}
	length, part := o.Len, o.PartSize
	if length == 0 {
		length = len(vec)
		if o.Contribution != nil {
			length = o.Contribution.Layout().Len
		}
	}
	if part == 0 {
		part = allreduce.DefaultPartSize
	}
	spans, err := allreduce.SpansForRoles(length, SpanBandwidths(members), reduces, contributes)
	if err != nil {
		return allreduce.RoundConfig{}, fmt.Errorf("group %s: %w", g.Key, err)
	}
	partTimeout, reduce, round := allreduce.TimeoutsFor(o.Timeout)
	cfg := allreduce.RoundConfig{
		Group: ag, Self: at, Len: length, Vector: vec, Spans: spans,
		PartSize: part, Codec: o.Codec, Aggregation: o.Aggregation, Feedback: o.Feedback,
		PartTimeout: partTimeout, ReduceTimeout: reduce, RoundTimeout: round,
	}
	g.commitRound(&cfg, o)
	return cfg, nil
}

// roundMembers are g's members as its round takes them: as announced, but
// in a group of clients only (every miner of a swarm behind NAT, say) the
// clients reduce too. Only a member that accepts no connection at all fails
// such a round, and it would fail the round anyway, where a group without a
// reducer could average nothing.
func (g Group) roundMembers() []Member {
	if slices.ContainsFunc(g.Members, func(m Member) bool { return m.Role.Reduces() }) {
		return g.Members
	}
	ms := slices.Clone(g.Members)
	for i := range ms {
		if ms[i].Role == Client {
			ms[i].Role = Full
		}
	}
	return ms
}

// RoundName names g's all-reduce round among a run's stream protocols:
// "allreduce-<epoch>-" and 12 hex digits of the SHA-256 of the group's key,
// so that two groups of one epoch, or two views of one group, never read
// each other's streams.
func (g Group) RoundName() string {
	key := sha256.Sum256([]byte(g.Key))
	return "allreduce-" + strconv.FormatUint(g.Epoch, 10) + "-" + hex.EncodeToString(key[:6])
}
