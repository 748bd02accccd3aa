package validator

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/allreduce/p2p"
	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/epoch"
	"github.com/dtrain-dev/dtrain/node/epoch/epochnet"
	"github.com/dtrain-dev/dtrain/node/hub"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/roster"
	"github.com/dtrain-dev/dtrain/node/score"
	"github.com/dtrain-dev/dtrain/node/train"
	"github.com/dtrain-dev/dtrain/node/verdicts"
	"github.com/dtrain-dev/dtrain/node/verify"
	"github.com/dtrain-dev/dtrain/torch"
)

// The miners' heartbeat and report expiry (node/miner): a validator's
// reports must live as long as theirs for it to count as live the same way.
const (
	heartbeat    = time.Second
	reportExpiry = 10 * heartbeat
)

// Options is what a Validator needs besides its config: a started network
// node (the caller owns it).
type Options struct {
	Config config.Validator
	Node   netx.Network
	Log    zerolog.Logger
	// Roster is the run's membership book when its owner signs rosters
	// (swarm.owner); nil: none.
	Roster *roster.Book
	// Verifier checks the audited contributions; nil: the one the config
	// chooses (verify.mode): a WorkCheck when Run and Train are given,
	// the run is in diloco mode and the mode is auto, NormCheck otherwise.
	Verifier Verifier
	// Run is the run's miner config and Train the run's training data
	// (what the miners read), which a WorkCheck needs to recompute each
	// miner's batches; nil: none.
	Run   *config.Miner
	Train *data.Dataset
	// Val is the run's held-out data: with a WorkCheck, the validator
	// evaluates each audited epoch's state on it (EvalEvent); nil: none.
	Val *data.Dataset
	// Events receives the validator's events (events.go) one at a time;
	// nil: none.
	Events func(Event)
	// Observer receives every epoch's weights once written; nil: none.
	Observer func(score.Weights)
}

// Validator is one validating peer.
type Validator struct {
	cfg       config.Validator
	opts      Options
	log       zerolog.Logger
	node      netx.Network
	self      string
	codec     allreduce.Codec
	agg       allreduce.Aggregation
	verdicts  *verdicts.Set // the run's validators' exclusions, this one's among them (the driver's loop only)
	excl      *exclusions   // this one's (the driver's loop only)
	maxWeight float64       // samples an epoch of the run holds, from verify.run_config; 0: unknown
	length    int           // elements of the run's all-reduce vector
	verifier  Verifier
	uplink    *rate.Limiter // net.upload_limit, shared by every round; nil: none
	// holder loads the swarm's states for the WorkCheck; nil without one.
	holder *holder
	// hub publishes the swarm's model (hub.repo); nil: none.
	hub *hub.Client

	gossip  netx.Topic
	scorer  *score.Scorer
	sinks   score.Sinks
	closers []func() error

	mu     sync.Mutex
	probed map[string]uint64 // epoch each miner was last probed in
}

// New builds a validator: its scorer, its weights sinks and its
// subscription to the run's gossip.
func New(ctx context.Context, o Options) (*Validator, error) {
	cfg := o.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validator config: %w", err)
	}
	if o.Node == nil {
		return nil, errors.New("validator: a network node is required")
	}
	codec, err := allreduce.ParseCodec(cfg.Swarm.Compress)
	if err != nil {
		return nil, err
	}
	agg, err := allreduce.ParseAggregation(cfg.Swarm.Aggregation)
	if err != nil {
		return nil, err
	}
	md := cfg.Model
	v := &Validator{cfg: cfg, opts: o, log: o.Log, node: o.Node, self: o.Node.ID().String(), codec: codec, agg: agg,
		length:   int(torch.NumParams(torch.NewConfig(md.NLayer, md.NHead, md.NEmbd, md.NPositions, md.VocabSize))),
		verifier: o.Verifier, probed: map[string]uint64{}, uplink: p2p.NewUplinkLimit(cfg.Net.UploadBits())}
	if v.verifier == nil {
		if err := v.chooseVerifier(); err != nil {
			v.Close()
			return nil, err
		}
	}
	if !slices.Contains(cfg.Swarm.Validators, v.self) {
		v.log.Warn().Str("peer", v.self).Msg("this validator is not in swarm.validators: miners will refuse it as an aux member, so it observes no round")
	}
	if err := v.openSinks(); err != nil {
		v.Close()
		return nil, err
	}
	if v.hub, err = v.hubClient(); err != nil {
		v.Close()
		return nil, err
	}
	if v.hub != nil && v.holder == nil {
		v.log.Warn().Msg("hub.upload_every is set but the validator loads no states (work checks off): it publishes nothing")
	}
	if v.gossip, err = o.Node.JoinGossip(ctx, cfg.RunID); err != nil {
		v.Close()
		return nil, err
	}
	epochnet.Handle(v.gossip, o.Roster)
	v.verdicts = verdicts.NewSet(v.trusted)
	v.excl = newExclusions(cfg.Score.ExcludeEpochs)
	return v, nil
}

// chooseVerifier sets the Verifier verify.mode asks for: a WorkCheck over
// the states this validator loads, or NormCheck where node/verify cannot
// run (the log says why).
func (v *Validator) chooseVerifier() error {
	v.verifier = NormCheck{}
	vc, run := v.cfg.Verify, v.opts.Run
	why := ""
	switch {
	case vc.Mode == "norm":
		why = "verify.mode is norm"
	case run == nil || v.opts.Train == nil:
		why = "no run config (verify.run_config) or no training data"
	case run.Swarm.Mode != "diloco":
		why = "node/verify checks diloco runs only, the run is in " + run.Swarm.Mode + " mode"
	}
	if why != "" {
		v.log.Info().Str("why", why).Msg("work checks: norm checks only")
		return nil
	}
	if run.RunID != v.cfg.RunID {
		return fmt.Errorf("validator: the run config is of run %q, the validator's run_id is %q", run.RunID, v.cfg.RunID)
	}
	md := run.Model
	if n := torch.NumParams(torch.NewConfig(md.NLayer, md.NHead, md.NEmbd, md.NPositions, md.VocabSize)); n != int64(v.length) {
		return fmt.Errorf("validator: the run config's model has %d parameters, the validator's [model] %d", n, v.length)
	}
	dev, err := torch.ParseDevice(vc.Device)
	if err != nil {
		return err
	}
	h := &holder{node: v.node, run: v.cfg.RunID, numel: int64(v.length),
		outer: train.OuterNesterov{LR: run.Swarm.OuterLR, Momentum: run.Swarm.OuterMomentum}}
	h.log = func(e uint64, err error, took time.Duration) {
		if err != nil {
			v.log.Warn().Err(err).Uint64("epoch", e).Msg("state for audits")
			return
		}
		v.log.Info().Uint64("epoch", e).Dur("took_ms", took).Msg("state loaded for audits")
	}
	checks := verify.DefaultConfig().WithWindows(vc.Windows)
	if vc.PowerZ > 0 {
		checks.PowerZ = vc.PowerZ
	}
	w, err := NewWorkCheck(*run, v.opts.Train, h, WorkOptions{Every: vc.EveryEpochs, Device: dev,
		Verify: checks, Log: v.log,
		Val: v.opts.Val, ValWindows: int64(max(1, run.Loop.EvalTokens/run.Data.SeqLen))})
	if err != nil {
		return err
	}
	v.verifier, v.holder, v.closers = w, h, append(v.closers, w.Close)
	v.log.Info().Int("every_epochs", vc.EveryEpochs).Int("windows", vc.Windows).Float64("power_z", checks.PowerZ).Str("device", dev.String()).Msg("work checks: node/verify on the states loaded from the miners")
	return nil
}

// openSinks opens the configured weights sinks.
func (v *Validator) openSinks() error {
	w := v.cfg.Weights
	if w.JSONL != "" {
		path := w.JSONL
		if !filepath.IsAbs(path) {
			path = filepath.Join(v.cfg.OutDir, path)
		}
		s, err := score.OpenJSONLSink(path)
		if err != nil {
			return err
		}
		v.sinks, v.closers = append(v.sinks, s), append(v.closers, s.Close)
	}
	if w.HTTPURL != "" {
		s, err := score.NewHTTPSink(w.HTTPURL)
		if err != nil {
			return err
		}
		v.sinks = append(v.sinks, s)
	}
	return nil
}

// scoreConfig is node/score's config with the thresholds of [score].
func (v *Validator) scoreConfig() score.Config {
	c, s := score.DefaultConfig(), v.cfg.Score
	c.MinBandwidth, c.TargetBandwidth = s.MinMbps*1e6/8, s.TargetMbps*1e6/8
	c.GoodRTT = time.Duration(s.GoodRTTMs * float64(time.Millisecond))
	c.MaxRTT = time.Duration(s.MaxRTTMs * float64(time.Millisecond))
	c.Alpha = s.Alpha
	return c
}

// Close closes the weights sinks; the network node is the caller's.
func (v *Validator) Close() {
	for _, c := range v.closers {
		if err := c(); err != nil {
			v.log.Warn().Err(err).Msg("close weights sink")
		}
	}
	v.closers = nil
}

// Run follows the run's epochs until ctx ends (then it returns nil).
func (v *Validator) Run(ctx context.Context) error {
	gctx, stop := context.WithCancel(ctx)
	d := &driver{v: v, ctx: gctx, done: make(chan func() []epoch.Action), claimed: map[string]uint64{}}
	defer func() {
		stop()
		d.work.Wait()
		v.log.Info().Uint64("epoch", d.mach.Epoch()).Msg("validator stopped")
	}()
	s := v.cfg.Swarm
	secs := func(x float64) time.Duration { return time.Duration(x * float64(time.Second)) }
	ec := epoch.Config{
		Run: v.cfg.RunID, Self: v.self, Role: matchmaking.Aux,
		MinGroup: s.MinGroup, MaxGroup: s.MaxGroup,
		MatchTimeout: secs(s.MatchSeconds), DelegateTimeout: secs(s.MatchSeconds), RoundTimeout: secs(s.RoundSeconds),
		Heartbeat: heartbeat, Expiry: reportExpiry, Validators: s.Validators,
		Excluded: v.verdicts.Excluded,
	}
	if v.opts.Run != nil {
		// The miners' bound on announced weights, so that this validator
		// forms the groups they form, and catches a miner claiming more.
		v.maxWeight = float64(v.opts.Run.MaxEpochSamples())
		ec.MaxWeight = v.maxWeight
	}
	mach, err := epoch.New(ec)
	if err != nil {
		return err
	}
	d.mach = mach
	in := make(chan epochnet.Inbound, 1024)
	d.work.Add(1)
	go func() {
		defer d.work.Done()
		epochnet.Read(gctx, v.gossip, in)
	}()
	if v.opts.Roster != nil {
		d.work.Add(1)
		go func() {
			defer d.work.Done()
			epochnet.KeepRoster(gctx, v.node, v.gossip, v.opts.Roster, v.log)
		}()
	}
	v.log.Info().Str("peer", v.self).Int("params", v.length).Int("trusted", len(s.Validators)).Msg("validator started")
	return d.loop(in)
}

// event hands e to the Events observer, if any.
func (v *Validator) event(e Event) {
	if v.opts.Events != nil {
		v.opts.Events(e)
	}
}
