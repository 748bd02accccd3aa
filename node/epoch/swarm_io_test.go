package epoch

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/sim"
)

const (
	roundTick   = 50 * time.Millisecond
	loadTimeout = 3 * time.Second // per donor
	earlyCap    = 4096
)

var noneCodec, _ = allreduce.ParseCodec("none")

// startRound builds and starts the all-reduce round an Average asks for,
// as the miner does (the formed group's own RoundConfig, the config's round
// deadline), over this miner's update (stage 1) or its group's mean
// (stage 2).
func (s *swarm) startRound(p *miner, now time.Duration, a Action) {
	ms := a.Group.Members
	ids := make([]string, len(ms))
	for i, mb := range ms {
		ids[i] = mb.ID
	}
	vec := p.delta
	if a.Stage == 2 {
		vec = p.mean
	}
	cfg, err := a.Group.RoundConfig(p.id, vec, matchmaking.RoundOptions{Codec: noneCodec, PartSize: s.dim, Timeout: s.cfg.RoundTimeout})
	if err != nil {
		s.t.Fatal(err)
	}
	r, err := allreduce.NewRound(cfg)
	if err != nil {
		s.t.Fatalf("%s: round of epoch %d stage %d: %v", p.id, a.Epoch, a.Stage, err)
	}
	key := fmt.Sprintf("%d/%d/%s", a.Epoch, a.Stage, a.Group.Key)
	rr := &roundRun{key: key, stage: a.Stage, ids: ids, r: r, begin: now}
	for _, mb := range ms {
		rr.weights = append(rr.weights, mb.Weight)
	}
	p.round = rr
	s.roundOut(p, r.Start(now))
	early := p.early[key]
	clear(p.early)
	p.earlyN = 0
	for _, m := range early {
		s.roundIn(p, now, m)
	}
	s.roundDone(p, now)
	if p.round == rr {
		s.roundTickLoop(p, rr)
	}
}

func (s *swarm) roundTickLoop(p *miner, rr *roundRun) {
	_, _ = s.net.After(sim.ID(p.id), roundTick, func(now time.Duration) {
		if !p.alive || p.round != rr || rr == nil {
			return
		}
		s.roundOut(p, rr.r.Tick(now))
		s.roundDone(p, now)
		if p.round == rr {
			s.roundTickLoop(p, rr)
		}
	})
}

func (s *swarm) roundOut(p *miner, out []allreduce.Outgoing) {
	for _, o := range out {
		to := p.round.ids[o.To]
		_ = s.net.Send(sim.ID(p.id), sim.ID(to), sim.Message{Size: o.Msg.Size(), Payload: roundMsg{key: p.round.key, from: p.id, msg: o.Msg}})
	}
}

func (s *swarm) roundIn(p *miner, now time.Duration, x roundMsg) {
	rr := p.round
	if rr == nil || rr.key != x.key {
		if p.earlyN < earlyCap {
			p.earlyN++
			p.early[x.key] = append(p.early[x.key], x)
		}
		return
	}
	from := slices.Index(rr.ids, x.from)
	if from < 0 {
		return
	}
	out, _ := rr.r.Receive(now, from, x.msg)
	s.roundOut(p, out)
	s.roundDone(p, now)
}

// roundDone tells the miner's machine once its round has ended.
func (s *swarm) roundDone(p *miner, now time.Duration) {
	rr := p.round
	if rr == nil || !rr.r.Done() {
		return
	}
	p.round = nil
	res, err := rr.r.Result()
	if err == nil && s.failRound != nil && s.failRound(p.id, p.m.Epoch()) {
		err = errors.New("round failed (injected)")
	}
	var ids []string
	var w float64
	if err == nil {
		p.mean = res.Vector
		for _, i := range res.Contributors {
			ids = append(ids, rr.ids[i])
		}
		w = roundWeight(rr, res.Contributors)
	}
	if now-rr.begin > s.cfg.RoundTimeout+roundTick {
		s.lateWaits = append(s.lateWaits, fmt.Sprintf("%s: round took %v", p.id, now-rr.begin))
	}
	s.do(p, now, p.m.Averaged(now, rr.stage, ids, w, err))
}

func roundWeight(rr *roundRun, contributors []int) float64 {
	var w float64
	for _, c := range contributors {
		w += rr.weights[c]
	}
	return w
}

// startLoad asks the donors of a Load for the state, one after another.
func (s *swarm) startLoad(p *miner, now time.Duration, a Action) {
	s.loads++
	s.loadsBy[p.id]++
	p.load, p.loadN = &loadRun{act: a}, len(a.Donors)
	s.askNext(p, now)
}

func (s *swarm) askNext(p *miner, now time.Duration) {
	l := p.load
	if l.next >= len(l.act.Donors) {
		p.load = nil
		s.loadFails++
		s.do(p, now, p.m.Loaded(now, l.act.Epoch, l.act.Hash, errors.New("no donor served the state")))
		return
	}
	donor := l.act.Donors[l.next]
	l.next++
	l.gen++
	gen := l.gen
	_ = s.net.Send(sim.ID(p.id), sim.ID(donor), sim.Message{Size: 48, Payload: loadReq{epoch: l.act.Epoch, hash: l.act.Hash}})
	_, _ = s.net.After(sim.ID(p.id), loadTimeout, func(now time.Duration) {
		if p.alive && p.load == l && l.gen == gen {
			s.askNext(p, now)
		}
	})
}

func (s *swarm) loadIn(p *miner, now time.Duration, x loadResp) {
	l := p.load
	if l == nil || x.epoch != l.act.Epoch || x.hash != l.act.Hash {
		return
	}
	if x.theta == nil || stateHash(x.epoch, x.theta) != x.hash {
		s.askNext(p, now)
		return
	}
	p.load = nil
	p.theta, p.delta, p.mean = x.theta, nil, nil
	s.do(p, now, p.m.Loaded(now, x.epoch, x.hash, nil))
}

// arm makes sure a timer will Tick the miner's machine at its NextTick,
// and notes phase changes for the deadline checks.
func (s *swarm) arm(p *miner, now time.Duration) {
	if !p.alive {
		return
	}
	if ph := p.m.Phase(); ph != p.phase {
		s.checkWait(p, now)
		p.phase, p.since = ph, now
	}
	next := max(p.m.NextTick(), now+time.Millisecond)
	if (p.armedAt >= now && p.armedAt <= next) || next == NoTick {
		return
	}
	p.armedAt = next
	_, _ = s.net.After(sim.ID(p.id), next-now, func(now time.Duration) {
		if !p.alive || p.armedAt != next {
			return
		}
		p.armedAt = -1
		s.do(p, now, p.m.Tick(now))
	})
}

// checkWait records a phase that lasted past its deadline.
func (s *swarm) checkWait(p *miner, now time.Duration) {
	c := s.cfg
	var limit time.Duration
	switch p.phase {
	case Listening:
		limit = c.Listen
		if limit == 0 {
			limit = c.Heartbeat*2 + c.Heartbeat/2
		}
	case Matching: // the window ends 1/2 to 3/2 of MatchTimeout away
		limit = c.MatchTimeout*3/2 + 3*c.ConfirmTimeout
	case Delegating:
		limit = c.DelegateTimeout*3/2 + 3*c.ConfirmTimeout
	case Averaging:
		limit = c.RoundTimeout
	case Awaiting:
		limit = c.DelegateTimeout*3/2 + c.RoundTimeout + 2*c.Heartbeat
	case Loading:
		limit = loadTimeout * time.Duration(max(1, p.loadN))
	default:
		return
	}
	if now-p.since > limit+roundTick+time.Millisecond {
		s.lateWaits = append(s.lateWaits, fmt.Sprintf("%s: %v for %v, limit %v", p.id, p.phase, now-p.since, limit))
	}
}
