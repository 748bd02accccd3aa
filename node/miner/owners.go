package miner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/errgroup"

	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/allreduce/p2p"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
)

// errLyingOwner is the end of a round whose result holds a part that
// differs from what its owner's rule gives over the contributors'
// committed values: the miner drops the epoch's mean and distrusts the
// owner (epoch.Machine.Distrust).
var errLyingOwner = errors.New("an owner's part of the mean differs from the recomputation")

// Owner checks: how many fetches run at once, how often one is tried,
// and how long the whole check may take at most.
const (
	ownerCheckParallel = 4
	ownerCheckTries    = 3
	ownerCheckTimeout  = 20 * time.Second
	// auditConcurrent is how many fetches a miner serves at once: every
	// member of its group checks its owners at the same time.
	auditConcurrent = 8
)

// ownerCheck is the outcome of checkOwners.
type ownerCheck struct {
	checked, unchecked int      // spans compared, spans given up on
	liars              []string // senders of parts that differ
}

// checkOwners samples one range of every span of a committed round's
// result that another member sent (allreduce.RoundConfig.CheckRange),
// fetches every contributor's committed chunks of it with their proofs
// (p2p.FetchChunks: a contributor can only serve the bytes its owners
// checked), recomputes the round's rule over them and compares the bits
// with the part this miner holds. A span whose chunks some contributor
// does not serve in time is left unchecked, not blamed.
func (m *Miner) checkOwners(ctx context.Context, r *allreduce.Round, own *allreduce.Contribution) ownerCheck {
	var out ownerCheck
	cfg := r.Config()
	res, err := r.Result()
	if err != nil || cfg.Commit.Chunk <= 0 || own == nil {
		return out
	}
	l := allreduce.CommitLayout{Codec: cfg.Codec.ID(), Len: cfg.Len, Chunk: cfg.Commit.Chunk}
	ctx, cancel := context.WithTimeout(ctx, min(ownerCheckTimeout, time.Duration(m.cfg.Swarm.RoundSeconds*float64(time.Second))))
	defer cancel()
	for _, s := range sampleSources(r.Sources(), cfg.Self) {
		lo, hi := cfg.CheckRange(s.Lo, s.Hi, rand.IntN(math.MaxInt32))
		first, count := lo/l.Chunk, (hi-1)/l.Chunk-lo/l.Chunk+1
		vals, err := m.fetchRange(ctx, cfg, res.Contributors, own, l, first, count)
		if err != nil {
			m.log.Debug().Err(err).Int("span", s.Span).Msg("owner check: fetch")
			out.unchecked++
			continue
		}
		for j := range vals {
			vals[j] = vals[j][lo-first*l.Chunk : hi-first*l.Chunk]
		}
		want, err := cfg.Recompute(res.Contributors, vals)
		if err != nil {
			out.unchecked++
			continue
		}
		out.checked++
		if !sameBits(want, res.Vector[lo:hi]) {
			if id := cfg.Group.Members[s.From].ID; !slices.Contains(out.liars, id) {
				out.liars = append(out.liars, id)
			}
		}
	}
	return out
}

// sampleSources picks one part of every span, among those another member
// sent (self's own parts need no check).
func sampleSources(src []allreduce.Source, self int) []allreduce.Source {
	bySpan := map[int][]allreduce.Source{}
	var spans []int
	for _, s := range src {
		if s.From == self || s.From < 0 || s.Hi <= s.Lo {
			continue
		}
		if bySpan[s.Span] == nil {
			spans = append(spans, s.Span)
		}
		bySpan[s.Span] = append(bySpan[s.Span], s)
	}
	out := make([]allreduce.Source, 0, len(spans))
	for _, k := range spans {
		ps := bySpan[k]
		out = append(out, ps[rand.IntN(len(ps))])
	}
	return out
}

// fetchRange returns the decoded chunks [first, first+count) of every
// contributor, in contributor order: this miner's from own, the others'
// fetched and checked against the roots the group agreed on.
func (m *Miner) fetchRange(ctx context.Context, cfg allreduce.RoundConfig, contributors []int, own *allreduce.Contribution, l allreduce.CommitLayout, first, count int) ([][]float32, error) {
	vals := make([][]float32, len(contributors))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(ownerCheckParallel)
	for j, c := range contributors {
		mb := cfg.Group.Members[c]
		g.Go(func() error {
			var b []byte
			var err error
			if c == cfg.Self {
				b, _, err = own.Chunks(first, count)
			} else {
				b, err = m.fetchChunks(ctx, mb, cfg.Commit, l, first, count)
			}
			if err == nil {
				vals[j], err = l.DecodeChunks(first, count, b)
			}
			return err
		})
	}
	return vals, g.Wait()
}

// fetchChunks fetches member mb's chunks, trying again after a refusal
// (an owner serves a few requests at once, and every member checks).
func (m *Miner) fetchChunks(ctx context.Context, mb allreduce.Member, cc allreduce.CommitConfig, l allreduce.CommitLayout, first, count int) ([]byte, error) {
	p, err := peer.Decode(mb.ID)
	if err != nil {
		return nil, err
	}
	sc := allreduce.CommitScope{Run: cc.Run, Epoch: cc.Epoch, Member: mb.ID}
	for try := 1; ; try++ {
		b, err := p2p.FetchChunks(ctx, m.node, p, AuditProtocol(m.cfg.RunID), mb.Commit, sc, l, first, count)
		if err == nil || errors.Is(err, allreduce.ErrCommitMismatch) || try == ownerCheckTries {
			return b, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(50+rand.IntN(200)) * time.Millisecond):
		}
	}
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// checkers are the peers besides the run's validators that may fetch this
// miner's committed contributions: the members of its last groups, who
// check their owners' parts (checkOwners).
type checkers struct {
	mu     sync.Mutex
	groups [][]string // the members of the last few groups, oldest first
}

// add lets g's members fetch from now on, and forgets the oldest group
// past keep.
func (c *checkers) add(g matchmaking.Group, keep int) {
	ids := make([]string, 0, len(g.Members))
	for _, mb := range g.Members {
		ids = append(ids, mb.ID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups = append(c.groups, ids)
	if len(c.groups) > keep {
		c.groups = c.groups[len(c.groups)-keep:]
	}
}

// allowed reports whether p is a member of one of the last groups.
func (c *checkers) allowed(p peer.ID) bool {
	id := p.String()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.groups {
		if slices.Contains(g, id) {
			return true
		}
	}
	return false
}

// String is a log line's summary of a check.
func (c ownerCheck) String() string {
	return fmt.Sprintf("%d spans checked, %d unchecked, %d differ", c.checked, c.unchecked, len(c.liars))
}
