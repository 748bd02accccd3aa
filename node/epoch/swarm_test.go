package epoch

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/progress"
	"github.com/dtrain-dev/dtrain/node/sim"
)

// swarm drives one Machine per simulated miner over node/sim with virtual
// time: gossip goes through relays that batch for flush (as gossipsub's
// mesh would, in far fewer messages than all-to-all), matchmaking views go
// peer to peer, rounds are real allreduce.Rounds over the simulated links,
// and state loads are requests answered by donors. The "model" is a short
// float32 vector; training adds a pseudo-random update that depends only on
// (peer, epoch, steps), and applying subtracts the mean.
type swarm struct {
	t      testing.TB
	net    *sim.Network
	rng    *rand.Rand
	cfg    Config
	dim    int
	init   []float32
	peers  map[string]*miner
	order  []string // every miner ever added, in order
	miners []*miner // the same miners

	relays []sim.ID
	batch  map[sim.ID][]any
	flush  time.Duration

	trainTime func(id string) time.Duration // one local step
	steps     int                           // local steps per epoch
	linkOf    func(i int) sim.Link

	// What happened, for the checks.
	applied   map[uint64]map[[32]byte]int // epoch → hash → miners that applied it (Apply)
	alone     []string                    // "peer@epoch" that applied alone
	outcomes  map[uint64]*outcome         // per epoch
	lateWaits []string                    // waits past a deadline
	loads     int
	loadFails int
	rejected  int
	relayOf   func(id string) sim.ID             // nil: by hash of the id
	failRound func(id string, epoch uint64) bool // a round this miner sees fail
	failApply func(id string, epoch uint64) bool // a mean this miner cannot apply
	claim     func(id string, k int) float64     // the samples a miner announces for k steps; nil: k
	loadsBy   map[string]int
	reasons   map[string]int
	rejects   map[string]int
}

// outcome counts what miners did with one epoch.
type outcome struct {
	averaged, dropped, alone int
	contributors             int // most contributors of one mean
}

// miner is one simulated peer.
type miner struct {
	id      string
	m       *Machine
	alive   bool
	theta   []float32 // the epoch's start state
	delta   []float32 // this epoch's update, once trained
	mean    []float32 // the last round's mean
	round   *roundRun
	early   map[string][]roundMsg // round messages for rounds not started yet
	earlyN  int
	armedAt time.Duration
	phase   Phase
	since   time.Duration // when phase began
	load    *loadRun
	loadN   int // donors of the last load
}

type loadRun struct {
	act  Action
	next int // next donor to ask
	gen  int
}

type roundRun struct {
	key     string
	stage   int
	ids     []string
	r       *allreduce.Round
	weights []float64
	begin   time.Duration
}

// Payloads on the simulated network.
type (
	gossipBatch []any // progress.Report or matchEnv
	matchEnv    struct {
		from string
		m    Match
	}
	roundMsg struct {
		key  string
		from string
		msg  allreduce.Msg
	}
	loadReq struct {
		epoch uint64
		hash  [32]byte
	}
	loadResp struct {
		epoch uint64
		hash  [32]byte
		theta []float32 // nil: not held
	}
)

func newSwarm(t testing.TB, seed int64, cfg Config, dim int) *swarm {
	s := &swarm{
		t: t, rng: rand.New(rand.NewSource(seed)), cfg: cfg, dim: dim,
		peers: map[string]*miner{}, batch: map[sim.ID][]any{}, flush: 100 * time.Millisecond,
		applied: map[uint64]map[[32]byte]int{}, outcomes: map[uint64]*outcome{},
		steps: 5, loadsBy: map[string]int{}, reasons: map[string]int{}, rejects: map[string]int{},
	}
	s.net = sim.New(rand.New(rand.NewSource(seed + 1)))
	s.init = make([]float32, dim)
	for i := range s.init {
		s.init[i] = float32(s.rng.NormFloat64())
	}
	s.trainTime = func(string) time.Duration { return time.Second }
	s.linkOf = func(int) sim.Link { return sim.Link{Latency: 5 * time.Millisecond} }
	for i := range 8 {
		id := sim.ID(fmt.Sprintf("relay%d", i))
		s.relays = append(s.relays, id)
		if err := s.net.AddPeer(id, sim.Link{Latency: time.Millisecond}, s.relayHandler(id)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func stateHash(epoch uint64, theta []float32) [32]byte {
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], epoch)
	h.Write(b[:])
	for _, v := range theta {
		binary.LittleEndian.PutUint32(b[:4], math.Float32bits(v))
		h.Write(b[:4])
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// add starts a new miner with the fresh model at virtual time now.
func (s *swarm) add(id string) *miner { return s.addFrom(id, 0, s.init) }

// addFrom starts a miner from a state of its own (a checkpoint).
func (s *swarm) addFrom(id string, epoch uint64, theta []float32) *miner {
	cfg := s.cfg
	cfg.Self = id
	m, err := New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	p := &miner{id: id, m: m, alive: true, theta: slices.Clone(theta), early: map[string][]roundMsg{}, armedAt: -1}
	s.peers[id] = p
	if err := s.net.AddPeer(sim.ID(id), s.linkOf(len(s.order)), func(now time.Duration, from sim.ID, msg sim.Message) {
		s.receive(p, now, string(from), msg.Payload)
	}); err != nil {
		s.t.Fatal(err)
	}
	s.order, s.miners = append(s.order, id), append(s.miners, p)
	now := s.net.Now()
	p.since = now
	s.do(p, now, m.Start(now, epoch, stateHash(epoch, p.theta)))
	return p
}

// crash kills a miner now: it sends and receives nothing more, and its
// machine and vectors are let go (everything that might still run for it
// checks alive first), so that a long churn does not keep every crashed
// miner's view of the swarm in memory.
func (s *swarm) crash(id string) {
	p := s.peers[id]
	p.alive = false
	if err := s.net.Crash(sim.ID(id), s.net.Now()); err != nil {
		s.t.Fatal(err)
	}
	p.m, p.theta, p.delta, p.mean, p.round, p.early, p.load = nil, nil, nil, nil, nil, nil, nil
}

func (s *swarm) relayHandler(id sim.ID) sim.Handler {
	return func(now time.Duration, from sim.ID, msg sim.Message) {
		b, ok := msg.Payload.(gossipBatch)
		if !ok {
			return
		}
		if len(s.batch[id]) == 0 {
			_, _ = s.net.After(id, s.flush, func(now time.Duration) {
				out := s.batch[id]
				s.batch[id] = nil
				msg := sim.Message{Size: 100 * len(out), Payload: gossipBatch(out)}
				for _, p := range s.miners {
					if p.alive {
						_ = s.net.Send(id, sim.ID(p.id), msg)
					}
				}
			})
		}
		s.batch[id] = append(s.batch[id], b...)
	}
}

// gossip publishes x through the sender's relay.
func (s *swarm) gossip(p *miner, x any) {
	relay := s.relays[int(fnv(p.id))%len(s.relays)]
	if s.relayOf != nil {
		relay = s.relayOf(p.id)
	}
	_ = s.net.Send(sim.ID(p.id), relay, sim.Message{Size: 100, Payload: gossipBatch{x}})
}

func fnv(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// receive hands a delivered payload to the miner.
func (s *swarm) receive(p *miner, now time.Duration, from string, payload any) {
	if !p.alive {
		return
	}
	switch x := payload.(type) {
	case gossipBatch:
		for _, g := range x {
			switch g := g.(type) {
			case matchEnv:
				if g.from != p.id {
					s.matchIn(p, now, g.from, g.m)
				}
			default:
				r := g.(reportMsg)
				acts, _ := p.m.Observe(now, r.r)
				s.do(p, now, acts)
			}
		}
	case matchEnv:
		s.matchIn(p, now, x.from, x.m)
	case roundMsg:
		s.roundIn(p, now, x)
	case loadReq:
		resp := loadResp{epoch: x.epoch, hash: x.hash}
		if p.m.Epoch() == x.epoch && p.m.Hash() == x.hash && p.m.Phase() != Loading {
			resp.theta = slices.Clone(p.theta)
		}
		_ = s.net.Send(sim.ID(p.id), sim.ID(from), sim.Message{Size: 16 + 4*len(resp.theta), Payload: resp})
	case loadResp:
		s.loadIn(p, now, x)
	}
	s.arm(p, now)
}

func (s *swarm) matchIn(p *miner, now time.Duration, from string, m Match) {
	acts, err := p.m.ReceiveMatch(now, from, m)
	if err != nil {
		s.rejected++
		s.rejects[trimReason(err.Error())]++
	}
	s.do(p, now, acts)
}

// reportMsg wraps a report on the gossip.
type reportMsg struct{ r progress.Report }

// do carries out a miner's actions.
func (s *swarm) do(p *miner, now time.Duration, acts []Action) {
	for _, a := range acts {
		if !p.alive {
			return
		}
		switch a.Kind {
		case Publish:
			s.gossip(p, reportMsg{a.Report})
		case PublishMatch:
			env := matchEnv{from: p.id, m: a.Match}
			if a.Match.To != "" {
				_ = s.net.Send(sim.ID(p.id), sim.ID(a.Match.To), sim.Message{Size: 200, Payload: env})
			} else {
				s.gossip(p, env)
			}
		case Train:
			s.train(p, now, a.Epoch)
		case Average:
			s.startRound(p, now, a)
		case Apply:
			if s.failApply != nil && s.failApply(p.id, a.Epoch) {
				s.do(p, now, p.m.ApplyFailed(now, "the mean overflows"))
				continue
			}
			next := make([]float32, s.dim)
			for i := range next {
				next[i] = p.theta[i] - p.mean[i]
			}
			s.outcome(a.Epoch).averaged++
			s.outcome(a.Epoch).contributors = max(s.outcome(a.Epoch).contributors, a.Contributors)
			s.advance(p, now, next, true)
		case ApplyAlone:
			next := make([]float32, s.dim)
			for i := range next {
				next[i] = p.theta[i] - p.delta[i]
			}
			s.outcome(a.Epoch).alone++
			s.alone = append(s.alone, fmt.Sprintf("%s@%d", p.id, a.Epoch))
			s.advance(p, now, next, false)
		case Restore:
			s.outcome(a.Epoch).dropped++
			s.reasons[trimReason(a.Reason)]++
			p.delta, p.mean = nil, nil
		case Load:
			s.startLoad(p, now, a)
		}
	}
	s.arm(p, now)
}

func (s *swarm) outcome(e uint64) *outcome {
	if s.outcomes[e] == nil {
		s.outcomes[e] = &outcome{}
	}
	return s.outcomes[e]
}

// advance makes next the miner's state of the following epoch.
func (s *swarm) advance(p *miner, now time.Duration, next []float32, averaged bool) {
	e := p.m.Epoch() + 1
	p.theta, p.delta, p.mean = next, nil, nil
	h := stateHash(e, next)
	if averaged {
		if s.applied[e] == nil {
			s.applied[e] = map[[32]byte]int{}
		}
		s.applied[e][h]++
	}
	s.do(p, now, p.m.Advanced(now, h))
}

// update is the pseudo-random training update of a miner for an epoch
// after steps local steps.
func (s *swarm) update(id string, epoch uint64, steps int) []float32 {
	r := rand.New(rand.NewSource(int64(fnv(id)) ^ int64(epoch)<<20 ^ int64(steps)))
	d := make([]float32, s.dim)
	for i := range d {
		d[i] = float32(r.NormFloat64()) * 0.01 * float32(steps)
	}
	return d
}

// train runs the epoch's local steps, stopping early once others are
// ready, then reports the weight (samples: one per step).
func (s *swarm) train(p *miner, now time.Duration, epoch uint64) {
	var step func(k int) func(time.Duration)
	step = func(k int) func(time.Duration) {
		return func(now time.Duration) {
			if !p.alive || p.m.Phase() != Training || p.m.Epoch() != epoch {
				return
			}
			if k < s.steps && !(k > 0 && p.m.OthersReady()) {
				_, _ = s.net.After(sim.ID(p.id), s.trainTime(p.id), step(k+1))
				return
			}
			p.delta = s.update(p.id, epoch, k)
			w := float64(k)
			if s.claim != nil {
				w = s.claim(p.id, k)
			}
			s.do(p, now, p.m.Trained(now, w))
		}
	}
	step(0)(now)
}

// trimReason keeps the kind of a reason, not its numbers and ids.
func trimReason(r string) string {
	b := []byte(r)
	for i, c := range b {
		if c >= '0' && c <= '9' {
			b[i] = '#'
		}
	}
	if len(b) > 90 {
		b = b[len(b)-90:]
	}
	return string(b)
}
