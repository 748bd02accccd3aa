package miner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/epoch"
	"github.com/dtrain-dev/dtrain/node/epoch/epochnet"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/progress"
	"github.com/rs/zerolog"
)

// heartbeat is how often a miner repeats its progress report. A peer
// silent for reportExpiry is gone: matchmaking stops waiting for it and it
// no longer counts toward the swarm epoch.
const (
	heartbeat    = time.Second
	reportExpiry = 10 * heartbeat
)

// clock is the epoch machine's clock, the one progress reports are dated
// by: time since the Unix epoch.
// liveEvery is how often the driver updates Miner.Live's view.
const liveEvery = 500 * time.Millisecond

func clock() time.Duration { return time.Duration(time.Now().UnixNano()) }

// driver carries out the Actions of the miner's epoch.Machine. One
// goroutine, Run's, owns the machine and the model between work items; the
// work an action starts (training, a round, a state load) runs in its own
// goroutine and hands its result back as a func that the loop runs.
type driver struct {
	m    *Miner
	mach *epoch.Machine
	ctx  context.Context // ends with Run: the loop and its work
	// runCtx is Run's own context: hub uploads run under it, so a run that
	// ends at max_epochs or max_minutes still finishes its last upload
	// (Run waits for it), while a cancelled run cuts it.
	runCtx context.Context
	work   sync.WaitGroup
	done   chan func() ([]epoch.Action, error)

	// Shared with the training goroutine.
	othersReady atomic.Bool
	others      atomic.Pointer[othersProgress]
	samples     atomic.Uint64
	rateBits    atomic.Uint64
	lossBits    atomic.Uint64 // the epoch's running mean training loss, for reports; NaN: none yet
	training    bool

	// params is a host copy of the model's parameters and hash the hash
	// of the state they are part of, valid whenever no epoch's work is
	// under way: every state the miner takes (its start, an applied
	// update, a loaded or restored state) comes with them, so an epoch
	// copies its parameters off the device and hashes its state once.
	params []float32
	hash   [32]byte
	start  []float32 // parameters the epoch started from
	vec    []float32 // this miner's update (pseudo-gradient or gradient)
	// contribution is vec committed (allreduce.Commit): what stage-1
	// rounds send and auditors fetch; nil when vec could not be encoded.
	contribution *allreduce.Contribution
	// groupContribution is the group's mean committed by its delegate
	// (groupCommit): what it contributes to the delegates' round.
	groupContribution *allreduce.Contribution
	mean              []float32 // the last round's mean
	ev                EpochEvent
	trainEnd          time.Time
	finished          bool      // max_epochs or max_minutes reached
	stopped           string    // why it finished (Miner.finished)
	alone             bool      // the last epoch was applied alone
	liveAt            time.Time // when Miner.live was last updated
}

// othersProgress is what the other peers at the miner's epoch had trained
// of it at a moment, and their summed rate (epoch.Machine.OthersProgress).
type othersProgress struct {
	samples, perSec float64
	at              time.Time
}

// swarmSamples estimates the swarm's samples for the epoch now, this
// miner's own being own: the others' as last reported, extrapolated at
// their rates.
func (d *driver) swarmSamples(own int64) float64 {
	o := d.others.Load()
	if o == nil {
		return float64(own)
	}
	return float64(own) + o.samples + float64(o.perSec*time.Since(o.at).Seconds())
}

func (m *Miner) machineConfig() epoch.Config {
	s := m.cfg.Swarm
	secs := func(x float64) time.Duration { return time.Duration(x * float64(time.Second)) }
	c := epoch.Config{
		Run: m.cfg.RunID, Self: m.self, Role: matchmaking.Full,
		MinGroup: s.MinGroup, MaxGroup: s.MaxGroup,
		MatchTimeout: secs(s.MatchSeconds), DelegateTimeout: secs(s.MatchSeconds), RoundTimeout: secs(s.RoundSeconds),
		Heartbeat: heartbeat, Expiry: reportExpiry, Validators: s.Validators,
		Excluded: m.verdicts.Excluded, MaxWeight: float64(m.cfg.MaxEpochSamples()),
	}
	if s.Mode == "gradients" {
		c.TargetSamples = uint64(s.TargetBatchSize)
	}
	return c
}

// loop runs the epoch protocol from the miner's current state (d.params,
// offered with d.hash) until max_epochs, max_minutes or ctx ends.
func (d *driver) loop(in <-chan epochnet.Inbound) error {
	acts := d.mach.Start(clock(), d.m.epoch, d.hash)
	for {
		if err := d.do(acts); err != nil {
			return err
		}
		if d.finished {
			return nil
		}
		d.othersReady.Store(d.mach.Phase() == epoch.Training && d.mach.OthersReady())
		if d.training && d.m.cfg.Swarm.Mode == "gradients" {
			// Only gradients mode stops on the swarm's samples (accumulate):
			// diloco needs no pass over the reports per message.
			s, rate := d.mach.OthersProgress(clock())
			d.others.Store(&othersProgress{samples: s, perSec: rate, at: time.Now()})
		}
		if now := time.Now(); now.Sub(d.liveAt) >= liveEvery {
			d.liveAt = now
			d.m.live.Store(&Live{SwarmEpoch: d.mach.SwarmEpoch(clock()), Epoch: d.mach.Epoch(), Phase: d.mach.Phase().String()})
		}
		timer := time.NewTimer(max(d.mach.NextTick()-clock(), time.Millisecond))
		var err error
		select {
		case <-d.ctx.Done():
			timer.Stop()
			return nil
		case g := <-in:
			acts = d.input(g)
		case <-timer.C:
			if d.training {
				d.mach.SetProgress(d.samples.Load(), math.Float64frombits(d.rateBits.Load()))
				d.mach.SetLoss(math.Float64frombits(d.lossBits.Load()))
			}
			acts = d.mach.Tick(clock())
		case f := <-d.done:
			acts, err = f()
		}
		timer.Stop()
		if err != nil {
			return err
		}
	}
}

// input hands a gossip message to the machine.
func (d *driver) input(g epochnet.Inbound) []epoch.Action {
	if g.Report != nil {
		acts, _ := d.mach.Observe(clock(), *g.Report) // stale and echoed reports are expected
		return acts
	}
	if g.Verdicts != nil {
		if err := d.m.verdicts.Update(g.From, *g.Verdicts); err != nil {
			d.m.log.Debug().Err(err).Msg("verdicts refused")
		}
		return nil
	}
	mt, ok := epochnet.Match(*g.Env)
	if !ok {
		return nil
	}
	acts, err := d.mach.ReceiveMatch(clock(), g.From, mt)
	if err != nil {
		d.m.log.Debug().Err(err).Str("peer", g.From).Msg("matchmaking message rejected")
	}
	return acts
}

// goWork runs f in a goroutine that ends with ctx; its result reaches the
// loop.
func (d *driver) goWork(f func(ctx context.Context) func() ([]epoch.Action, error)) {
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

// do carries out the machine's actions.
func (d *driver) do(acts []epoch.Action) error {
	for _, a := range acts {
		if err := d.act(a); err != nil {
			return fmt.Errorf("epoch %d: %s: %w", a.Epoch, a.Kind, err)
		}
		if d.finished {
			return nil
		}
	}
	return nil
}

func (d *driver) act(a epoch.Action) error {
	m := d.m
	switch a.Kind {
	case epoch.Publish:
		body, err := a.Report.Marshal()
		if err == nil {
			err = m.gossip.Publish(d.ctx, netx.GossipMessage{Type: progress.GossipType, Body: body})
		}
		if err != nil && d.ctx.Err() == nil {
			m.log.Debug().Err(err).Msg("publish progress")
		}
	case epoch.PublishMatch:
		mt := a.Match
		body, err := matchmaking.Envelope{To: mt.To, Epoch: mt.Epoch, Ready: mt.Ready, Msg: mt.Msg}.Marshal()
		if err == nil {
			err = m.gossip.Publish(d.ctx, netx.GossipMessage{Type: matchmaking.GossipType, Body: body})
		}
		if err != nil && d.ctx.Err() == nil {
			m.log.Warn().Err(err).Uint64("epoch", a.Epoch).Msg("publish matchmaking message")
		}
	case epoch.Train:
		if d.stopped = m.finished(); d.stopped != "" {
			d.finished = true
			return nil
		}
		return d.train()
	case epoch.Average:
		if a.Stage == 1 {
			d.ev.Group = len(a.Group.Members)
		}
		d.average(a)
	case epoch.Apply:
		d.alone = false
		d.ev.Contributors = a.Contributors
		m.cheat.applied(d.mean)
		err := m.checkMean(d.mean, d.vec, d.ev.Samples)
		if err == nil {
			err = d.advance(d.mean)
		}
		if errors.Is(err, errBadAverage) {
			// The group's mean is unusable: drop the epoch, as after a
			// failed round.
			m.log.Warn().Err(err).Uint64("epoch", a.Epoch).Msg("refusing the group's averaged update")
			return d.do(d.mach.ApplyFailed(clock(), err.Error()))
		}
		return err
	case epoch.ApplyAlone:
		d.ev.Contributors, d.ev.Alone = 1, a.Reason
		// Said once while alone (a new run's first miner is alone until
		// others join), not every epoch.
		lvl := zerolog.InfoLevel
		if d.alone {
			lvl = zerolog.DebugLevel
		}
		d.alone = true
		m.log.WithLevel(lvl).Str("reason", a.Reason).Uint64("epoch", a.Epoch).Msg("no other miner is live: applying this miner's own update alone, epoch after epoch until others join")
		return d.advance(d.vec)
	case epoch.Restore:
		return d.restore(a)
	case epoch.Load:
		d.load(a)
	}
	return nil
}

// restore drops the epoch's update: the model goes back to the epoch's
// start, and the epoch is reported as dropped.
func (d *driver) restore(a epoch.Action) error {
	m := d.m
	d.vec, d.mean = nil, nil
	if d.start == nil {
		return nil // nothing trained since the state was set
	}
	if err := m.model.SetParams(d.start); err != nil {
		return err
	}
	// The state is the epoch's start again, whose hash d.hash still is.
	d.params, d.start = d.start, nil
	m.log.Warn().Str("reason", a.Reason).Uint64("epoch", a.Epoch).Msg("dropping this epoch's update")
	d.ev.Dropped, d.ev.Alone, d.ev.ParamHash, d.ev.Contributors = true, a.Reason, d.ev.StartHash, 0
	d.ev.Tokens = m.tokens
	d.emit()
	return nil
}

// advance applies mean as the epoch's update, makes the result the state
// the miner offers and checkpoints, and tells the machine.
func (d *driver) advance(mean []float32) error {
	m := d.m
	if mean == nil || d.start == nil {
		return errors.New("no update to apply")
	}
	params, err := m.apply(d.start, mean)
	if err != nil {
		return err
	}
	d.start, d.vec, d.mean = nil, nil, nil
	m.epoch++
	blob, err := m.encodeState(params)
	if err != nil {
		return err
	}
	hash, err := m.offerState(d.runCtx, blob, d.atEpoch())
	if err != nil {
		return err
	}
	d.params, d.hash = params, hash
	d.ev.ParamHash = shortHash(hash)
	d.ev.SyncTime = time.Since(d.trainEnd)
	m.saveModel(hash)
	d.ev.Tokens = m.tokens
	if m.opts.Val != nil && m.cfg.Swarm.EvalEvery > 0 && m.epoch%uint64(m.cfg.Swarm.EvalEvery) == 0 {
		if d.ev.ValLoss, err = m.heldOutLoss(); err != nil {
			return err
		}
	}
	d.emit()
	return d.do(d.mach.Advanced(clock(), hash))
}

// emit logs the epoch and hands its event to the observers.
func (d *driver) emit() {
	m, ev := d.m, d.ev
	if ev.SyncTime == 0 {
		ev.SyncTime = time.Since(d.trainEnd)
	}
	ev.Peers = len(m.gossip.Peers())
	m.log.Info().Str("peer", m.self).Uint64("epoch", ev.Epoch).Float64("loss", ev.Loss).Float64("val_loss", ev.ValLoss).
		Int64("tokens", ev.Tokens).Dur("train_ms", ev.TrainTime).
		Int("group", ev.Group).Int("contributors", ev.Contributors).Str("alone", ev.Alone).Bool("dropped", ev.Dropped).
		Dur("sync_ms", ev.SyncTime).Dur("allreduce_ms", ev.RoundTime).Int("span", ev.Span).Str("role", ev.Role).
		Float64("up_mbps", ev.UpMbps).Float64("down_mbps", ev.DownMbps).Int64("bytes_sent", ev.BytesSent).
		Int64("bytes_received", ev.BytesReceived).
		Str("param_hash", ev.ParamHash).Str("start_hash", ev.StartHash).Str("data_hash", ev.DataHash).Msg("epoch")
	if m.opts.Observer != nil {
		m.opts.Observer(ev)
	}
	m.event(ev)
}
