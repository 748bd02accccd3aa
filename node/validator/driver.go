package validator

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/epoch"
	"github.com/dtrain-dev/dtrain/node/epoch/epochnet"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/progress"
	"github.com/dtrain-dev/dtrain/node/score"
	"github.com/dtrain-dev/dtrain/node/verdicts"
)

// clock is the epoch machine's clock, the one progress reports are dated
// by: time since the Unix epoch, as the miners'.
func clock() time.Duration { return time.Duration(time.Now().UnixNano()) }

// driver carries out the Actions of the validator's epoch.Machine. Run's
// goroutine owns the machine and the scorer; rounds and probes run in
// goroutines and hand their results back as funcs the loop runs.
type driver struct {
	v    *Validator
	mach *epoch.Machine
	ctx  context.Context
	work sync.WaitGroup
	done chan func() []epoch.Action

	open         uint64 // the epoch observations go to
	waiting      bool   // a Train action is out (announce)
	tried        bool   // announced in epoch triedAt
	triedAt      uint64
	pending      map[uint64]int    // work begun per epoch and not ended
	miners       map[string]bool   // peers seen offering a state: the ones probed
	probing      bool              // a probe run is out
	auditing     bool              // an audit by the verifier is out
	normAudit    bool              // an audit by NormCheck is out
	claimed      map[string]uint64 // epoch+1 of each miner's last over-weight verdict (checkWeight)
	started      bool              // the scorer exists
	seen         sightings         // the miners' reports, for EpochEvents
	publishing   bool              // a Hub upload is out
	published    *uint64           // the epoch of the last state published
	samplesTotal int64             // the samples the miners reported over the closed epochs
}

func (d *driver) loop(in <-chan epochnet.Inbound) error {
	acts := d.mach.Start(clock(), 0, [32]byte{})
	for {
		d.do(acts)
		acts = nil
		timer := time.NewTimer(max(d.mach.NextTick()-clock(), time.Millisecond))
		select {
		case <-d.ctx.Done():
			timer.Stop()
			return nil
		case g := <-in:
			acts = append(d.input(g), d.announce()...)
		case <-timer.C:
			acts = append(d.mach.Tick(clock()), d.announce()...)
			d.maybePublish()
		case f := <-d.done:
			acts = f()
		}
		timer.Stop()
	}
}

// input hands a gossip message to the machine, and a miner's report to
// the scorer as a sighting.
func (d *driver) input(g epochnet.Inbound) []epoch.Action {
	if r := g.Report; r != nil {
		acts, err := d.mach.Observe(clock(), *r)
		if err == nil && r.Offers && !d.v.trusted(r.Peer) {
			d.noteMiner(r.Peer)
			behind := uint64(0)
			if r.Epoch < d.open {
				behind = d.open - r.Epoch
			}
			d.observe(score.Seen{Epoch: d.open, Miner: r.Peer, Behind: behind})
			d.seen.note(*r, time.Now(), d.open)
		}
		if err == nil && r.Peer != d.v.self && d.v.trusted(r.Peer) {
			d.seen.noteValidator(r.Peer, time.Now())
		}
		return acts
	}
	if g.Verdicts != nil {
		if err := d.v.verdicts.Update(g.From, *g.Verdicts); err != nil {
			d.v.log.Debug().Err(err).Msg("verdicts refused")
		}
		return nil
	}
	d.checkWeight(g.From, g.Env)
	mt, ok := epochnet.Match(*g.Env)
	if !ok {
		return nil
	}
	acts, err := d.mach.ReceiveMatch(clock(), g.From, mt)
	if err != nil {
		d.v.log.Debug().Err(err).Str("peer", g.From).Msg("matchmaking message rejected")
	}
	return acts
}

// checkWeight catches a miner whose own announcement (signed, as all
// gossip is) claims more samples than an epoch of the run holds: the
// miners' matchmaking refuses it, so it is never in a round this validator
// could score, and the claim itself is the proof.
func (d *driver) checkWeight(from string, env *matchmaking.Envelope) {
	r, bound := env.Ready, d.v.maxWeight
	if r == nil || bound <= 0 || r.Role == matchmaking.Aux || r.Peer != from || r.Weight <= bound || d.v.trusted(from) {
		return
	}
	e := max(d.open, env.Epoch)
	if d.claimed[from] == e+1 { // one verdict per miner and epoch (+1: 0 is none)
		return
	}
	if len(d.claimed) >= maxExcluded {
		clear(d.claimed)
	}
	d.claimed[from] = e + 1
	d.observe(score.Verdict{Epoch: e, Miner: from, Kind: score.Cheat,
		Reason: fmt.Sprintf("announced %.0f samples, an epoch of the run holds at most %.0f", r.Weight, bound)})
}

// goWork runs f in a goroutine that ends with ctx; its result reaches the
// loop.
func (d *driver) goWork(f func(ctx context.Context) func() []epoch.Action) {
	d.work.Add(1)
	go func() {
		defer d.work.Done()
		res := f(d.ctx)
		select {
		case d.done <- res:
		case <-d.ctx.Done():
		}
	}()
}

func (d *driver) do(acts []epoch.Action) {
	for i := 0; i < len(acts); i++ {
		acts = append(acts, d.act(acts[i])...)
	}
}

func (d *driver) act(a epoch.Action) []epoch.Action {
	v := d.v
	switch a.Kind {
	case epoch.Publish:
		// A validator holds the swarm's state by hash only: it offers
		// nothing to load.
		r := a.Report
		r.Offers = false
		body, err := r.Marshal()
		if err == nil {
			err = v.gossip.Publish(d.ctx, netx.GossipMessage{Type: progress.GossipType, Body: body})
		}
		if err != nil && d.ctx.Err() == nil {
			v.log.Debug().Err(err).Msg("publish progress")
		}
	case epoch.PublishMatch:
		mt := a.Match
		body, err := matchmaking.Envelope{To: mt.To, Epoch: mt.Epoch, Ready: mt.Ready, Msg: mt.Msg}.Marshal()
		if err == nil {
			err = v.gossip.Publish(d.ctx, netx.GossipMessage{Type: matchmaking.GossipType, Body: body})
		}
		if err != nil && d.ctx.Err() == nil {
			v.log.Warn().Err(err).Uint64("epoch", a.Epoch).Msg("publish matchmaking message")
		}
	case epoch.Train:
		d.enter(a.Epoch)
		d.waiting = true
		return d.announce()
	case epoch.Average:
		d.average(a)
	case epoch.Load:
		// Follow the state by hash (doc.go, "State"): the rules chose it
		// from the live reports, and two or more peers hold it.
		// A WorkCheck needs the parameters too: they load in the
		// background, and the epoch's audits wait for them.
		if a.Epoch != d.mach.Epoch() {
			v.log.Info().Uint64("epoch", a.Epoch).Str("hash", hex8(a.Hash)).Int("holders", len(a.Donors)).Msg("following the swarm's state")
		}
		if v.holder != nil {
			v.holder.hold(d.ctx, &d.work, a.Epoch, a.Hash, a.Donors)
		}
		return d.mach.Loaded(clock(), a.Epoch, a.Hash, nil)
	case epoch.Restore:
		v.log.Debug().Uint64("epoch", a.Epoch).Str("reason", a.Reason).Msg("no round this epoch")
	}
	return nil
}

// announce answers the Train action once there is something to do: when
// a miner of this validator's epoch and state has announced, it announces
// as aux at once, into that miner's window (node/epoch joins an announced
// window), which the others join too; it never opens a window itself, so
// it never sets the miners' pace. Its matchmaking expects what the
// miners' does (its gossip neighbours count while they have not
// reported), so both close collecting at the same moment. When the rules want another state (it
// started before the miners, or fell behind), Trained asks for the load.
func (d *driver) announce() []epoch.Action {
	if !d.waiting || d.mach.Phase() != epoch.Training {
		return nil
	}
	now := clock()
	e := d.mach.Epoch()
	join := d.mach.OthersReady() && (!d.tried || d.triedAt != e)
	if !join && !d.mach.Outdated(now) {
		return nil
	}
	if join {
		// One try per epoch: the miners' announcements stay for the
		// epoch, and after a window that formed no group a second try
		// would open a window of its own.
		d.tried, d.triedAt = true, e
		d.mach.SetNeighbours(d.v.neighbours())
	}
	d.waiting = false
	return d.mach.Trained(now, 0)
}

// maxMiners bounds the ids a validator remembers as miners to probe.
const maxMiners = 1 << 14

// noteMiner remembers id as a miner (a peer that offers its state).
func (d *driver) noteMiner(id string) {
	if d.miners == nil {
		d.miners = map[string]bool{}
	}
	if len(d.miners) < maxMiners {
		d.miners[id] = true
	}
}

// enter starts observing epoch e: the epochs before it are closed and
// their weights written, and its probes start.
func (d *driver) enter(e uint64) {
	v := d.v
	if !d.started {
		s, err := score.New(v.scoreConfig(), e)
		if err != nil {
			v.log.Error().Err(err).Msg("scorer")
			return
		}
		v.scorer, d.started, d.open = s, true, e
	}
	if e > d.open {
		d.open = e
		d.closeDone()
	}
	d.probe(e)
}

// begin notes work whose observations are for epoch e (a round, audits,
// probes): e's weights wait for it.
func (d *driver) begin(e uint64) {
	if d.pending == nil {
		d.pending = map[uint64]int{}
	}
	d.pending[e]++
}

// end notes the end of work begun for e, and closes what it held back.
func (d *driver) end(e uint64) {
	if d.pending[e]--; d.pending[e] <= 0 {
		delete(d.pending, e)
	}
	d.closeDone()
}

// closeDone closes every epoch before the one observed now whose work has
// ended, in order: an epoch with work pending holds back the later ones.
func (d *driver) closeDone() {
	if !d.started || d.open == 0 {
		return
	}
	last := d.open - 1
	for e := range d.pending {
		if e <= last {
			if e == 0 {
				return
			}
			last = min(last, e-1)
		}
	}
	if last >= d.v.scorer.Next() {
		d.close(last)
	}
}

// observe hands o to the scorer; an observation for a closed epoch or a
// miner over its bounds is dropped.
func (d *driver) observe(o score.Observation) {
	if !d.started {
		return
	}
	switch o := o.(type) {
	case score.Verdict:
		if o.Kind == score.Cheat {
			d.v.log.Warn().Uint64("epoch", o.Epoch).Str("miner", o.Miner).Str("reason", o.Reason).Msg("caught")
			d.v.excl.caught(o.Miner, o.Epoch)
		}
		d.v.event(VerdictEvent{Epoch: o.Epoch, Miner: o.Miner, Verdict: verdictKinds[o.Kind], Reason: o.Reason})
	case score.Probe:
		d.v.event(ProbeEvent{Epoch: o.Epoch, Miner: o.Miner, RTT: o.RTT, UpMbps: o.Up * 8 / 1e6, DownMbps: o.Down * 8 / 1e6, Failed: o.Failed})
	}
	if err := d.v.scorer.Observe(o); err != nil {
		d.v.log.Debug().Err(err).Msg("observation dropped")
	}
}

// close closes the scorer's epochs through e, writes e's weights to the
// sinks and logs them.
func (d *driver) close(e uint64) {
	v := d.v
	if e < v.scorer.Next() {
		return
	}
	w, err := v.scorer.Weights(e)
	if err != nil {
		v.log.Warn().Err(err).Uint64("epoch", e).Msg("weights")
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	err = v.sinks.Write(ctx, w)
	cancel()
	if err != nil {
		v.log.Warn().Err(err).Uint64("epoch", e).Msg("write weights")
	}
	for _, m := range w.Miners {
		ev := v.log.Info().Uint64("epoch", e).Str("miner", m.Miner).Float64("weight", m.Weight).Float64("score", m.Score).
			Bool("active", m.Active).Float64("gate", m.Gate).Float64("work", m.Work).Float64("network", m.Network)
		if m.Delivery != nil {
			ev = ev.Float64("delivery", *m.Delivery)
		}
		ev.Msg("weight")
	}
	if v.opts.Observer != nil {
		v.opts.Observer(w)
	}
	samples, loss := d.seen.close(e)
	d.samplesTotal += samples
	v.event(EpochEvent{Epoch: e, Weights: w, Samples: samples, Loss: loss, Miners: slices.SortedFunc(maps.Values(d.seen.last),
		func(a, b MinerSeen) int { return strings.Compare(a.Miner, b.Miner) }), Validators: d.seen.liveValidators(time.Now())})
	d.publishExclusions(e)
}

// publishExclusions gossips this validator's exclusions as of epoch e, and
// applies them to its own matchmaking as the miners do.
func (d *driver) publishExclusions(e uint64) {
	v := d.v
	l := v.excl.list(e)
	_ = v.verdicts.Update(v.self, l) // this validator trusts itself
	body, err := l.Marshal()
	if err == nil {
		err = v.gossip.Publish(d.ctx, netx.GossipMessage{Type: verdicts.GossipType, Body: body})
	}
	if err != nil && d.ctx.Err() == nil {
		v.log.Debug().Err(err).Msg("publish verdicts")
	}
	for _, en := range l.Entries {
		if en.From == e+2 {
			v.log.Info().Str("miner", en.Peer).Uint64("from", en.From).Uint64("until", en.Until).Msg("miner excluded from groups")
		}
	}
}

// trusted reports whether p is one of the run's validators (this one
// included): they are not miners, and are never scored.
func (v *Validator) trusted(p string) bool {
	if p == v.self {
		return true
	}
	for _, id := range v.cfg.Swarm.Validators {
		if id == p {
			return true
		}
	}
	return false
}

// neighbours are the peers on the run's gossip.
func (v *Validator) neighbours() []string {
	ps := v.gossip.Peers()
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.String()
	}
	return ids
}
