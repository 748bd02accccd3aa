package miner

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/allreduce/p2p"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
)

// inboxEpochs is how many epochs ahead of its own a miner buffers
// matchmaking messages for (peers that finish an epoch sooner announce
// before this one is ready), and inboxCap bounds each epoch's buffer.
const (
	inboxEpochs = 4
	inboxCap    = 4096
)

type inboundMatch struct {
	from string
	env  matchmaking.Envelope
}

// matchInbox buffers matchmaking messages by epoch until the miner reaches
// that epoch.
type matchInbox struct {
	mu      sync.Mutex
	current uint64
	byEpoch map[uint64][]inboundMatch
	wake    chan struct{}
}

func newMatchInbox() *matchInbox {
	return &matchInbox{byEpoch: map[uint64][]inboundMatch{}, wake: make(chan struct{}, 1)}
}

func (b *matchInbox) put(m inboundMatch) {
	b.mu.Lock()
	e := m.env.Epoch
	if e >= b.current && e < b.current+inboxEpochs && len(b.byEpoch[e]) < inboxCap {
		b.byEpoch[e] = append(b.byEpoch[e], m)
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// othersReady reports whether another miner has announced it is ready to
// average epoch.
func (b *matchInbox) othersReady(epoch uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.byEpoch[epoch] {
		if len(m.env.Msg.Ready) > 0 {
			return true
		}
	}
	return false
}

// take returns and forgets what is buffered for epoch, and drops older
// epochs.
func (b *matchInbox) take(epoch uint64) []inboundMatch {
	b.mu.Lock()
	defer b.mu.Unlock()
	if epoch > b.current {
		b.current = epoch
	}
	for e := range b.byEpoch {
		if e < b.current {
			delete(b.byEpoch, e)
		}
	}
	ms := b.byEpoch[epoch]
	delete(b.byEpoch, epoch)
	return ms
}

// formGroup runs matchmaking for epoch over the run's gossip until a group
// forms or matchmaking fails.
func (m *Miner) formGroup(ctx context.Context, epoch uint64, weight float64) (matchmaking.Group, error) {
	start := time.Now()
	now := func() time.Duration { return time.Since(start) }
	s := m.cfg.Swarm
	mm, err := matchmaking.New(matchmaking.Config{
		Run: m.cfg.RunID, Self: m.self, Epoch: epoch,
		MinGroup: s.MinGroup, MaxGroup: s.MaxGroup,
		Deadline: time.Duration(s.MatchSeconds * float64(time.Second)),
		Expected: m.expected(epoch),
	})
	if err != nil {
		return matchmaking.Group{}, err
	}
	ready := matchmaking.Ready{Run: m.cfg.RunID, Epoch: epoch, Peer: m.self, Role: matchmaking.Full, Weight: weight}
	out, err := mm.Announce(now(), ready)
	if err != nil {
		return matchmaking.Group{}, err
	}
	m.publishMatch(ctx, epoch, &ready, out)
	for !mm.Done() {
		for _, in := range m.inbox.take(epoch) {
			if in.env.To != "" && in.env.To != m.self {
				continue
			}
			if r := in.env.Ready; r != nil && in.env.Msg.View != nil {
				// The sender's announcement, in case its own message is
				// late or lost; an echo of one held is ignored.
				out, _ := mm.Receive(now(), in.from, matchmaking.Msg{Ready: []matchmaking.Ready{*r}})
				m.publishMatch(ctx, epoch, &ready, out)
			}
			out, err := mm.Receive(now(), in.from, in.env.Msg)
			if err != nil {
				m.log.Debug().Err(err).Str("peer", in.from).Msg("matchmaking message rejected")
			}
			m.publishMatch(ctx, epoch, &ready, out)
		}
		next, _ := mm.NextTick()
		wait := time.NewTimer(max(next-now(), time.Millisecond))
		select {
		case <-m.inbox.wake:
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			return matchmaking.Group{}, ctx.Err()
		}
		wait.Stop()
		m.publishMatch(ctx, epoch, &ready, mm.Tick(now()))
	}
	return mm.Group()
}

// expected is how many miners (this one included) should be ready for
// epoch: every peer known on the run, from its progress reports or as a
// gossip neighbour, except those whose latest report puts them more than
// an epoch behind (they are catching up and will not make it).
// Matchmaking stops collecting as soon as that many are ready; counting
// too few would make members close with different sets and fail to agree.
func (m *Miner) expected(epoch uint64) int {
	m.view.mu.Lock()
	live := m.view.tracker.Live(trackerNow())
	m.view.mu.Unlock()
	at := make(map[string]uint64, len(live))
	for _, r := range live {
		at[r.Peer] = r.Epoch
	}
	for _, p := range m.gossip.Peers() {
		if _, ok := at[p.String()]; !ok {
			at[p.String()] = epoch
		}
	}
	n := 1
	for _, e := range at {
		if e+1 >= epoch {
			n++
		}
	}
	return n
}

func (m *Miner) publishMatch(ctx context.Context, epoch uint64, self *matchmaking.Ready, out []matchmaking.Outgoing) {
	for _, o := range out {
		body, err := matchmaking.Envelope{To: o.To, Epoch: epoch, Ready: self, Msg: o.Msg}.Marshal()
		if err == nil {
			err = m.gossip.Publish(ctx, netx.GossipMessage{Type: matchmaking.GossipType, Body: body})
		}
		if err != nil {
			m.log.Warn().Err(err).Uint64("epoch", epoch).Msg("publish matchmaking message")
		}
	}
}

// roundResult is an epoch's averaging as this miner saw it.
type roundResult struct {
	mean         []float32 // nil when the miner averaged alone
	group        int       // members of the formed group, 0 if none
	contributors int
	bytesSent    int64
	took         time.Duration
}

// average averages vec (weight samples) with the epoch's group. On any
// failure it returns the miner's own vector as the mean of a group of one,
// with the reason.
func (m *Miner) average(ctx context.Context, epoch uint64, vec []float32, weight float64) (roundResult, error) {
	start := time.Now()
	g, err := m.formGroup(ctx, epoch, weight)
	if err != nil {
		return roundResult{took: time.Since(start)}, fmt.Errorf("matchmaking for epoch %d: %w", epoch, err)
	}
	res := roundResult{group: len(g.Members)}
	if len(g.Members) < 2 {
		res.took = time.Since(start)
		return res, fmt.Errorf("epoch %d: a group of one", epoch)
	}
	cfg, err := g.RoundConfig(m.self, vec, matchmaking.RoundOptions{Codec: m.codec, Feedback: m.feedback,
		Timeout: time.Duration(m.cfg.Swarm.RoundSeconds * float64(time.Second))})
	if err != nil {
		return res, err
	}
	peers, err := p2p.Peers(cfg.Group)
	if err != nil {
		return res, err
	}
	r, err := allreduce.NewRound(cfg)
	if err != nil {
		return res, err
	}
	proto := netx.Protocol(m.cfg.RunID, g.RoundName())
	out, err := p2p.RunRound(m.log.WithContext(ctx), m.node, proto, peers, r, 10*time.Millisecond)
	res.took = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("all-reduce of epoch %d: %w", epoch, err)
	}
	res.mean, res.contributors = out.Vector, len(out.Contributors)
	res.bytesSent = cfg.SentBytes()
	return res, nil
}
