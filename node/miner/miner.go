package miner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
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
	"github.com/dtrain-dev/dtrain/node/roster"
	"github.com/dtrain-dev/dtrain/node/state"
	"github.com/dtrain-dev/dtrain/node/train"
	"github.com/dtrain-dev/dtrain/node/verdicts"
	"github.com/dtrain-dev/dtrain/torch"
)

// Options is what a Miner needs besides its config: a started network node
// (the caller owns it; a *netx.Node), and the datasets, cut into windows of
// data.seq_len.
type Options struct {
	Config   config.Miner
	Node     netx.Network
	Train    *data.Dataset
	Val      *data.Dataset // nil: no evaluation
	Log      zerolog.Logger
	Observer func(EpochEvent) // nil: none; sees the epochs that Events sees too
	Events   func(Event)      // nil: none; called one event at a time
	// Cheat makes the miner cheat (cheat.go): tests and demos only.
	Cheat Cheat
	// Roster is the run's membership book when its owner signs rosters
	// (swarm.owner); nil: none.
	Roster *roster.Book
}

// EpochEvent reports one finished epoch.
type EpochEvent struct {
	Epoch         uint64        `json:"epoch"` // the epoch just finished; the next starts from its result
	Peer          string        `json:"peer"`  // this miner's peer id
	Mode          string        `json:"mode"`
	Loss          float64       `json:"loss"`               // mean local training loss over the epoch
	ValLoss       float64       `json:"val_loss,omitempty"` // held-out loss after the update, when evaluated
	Samples       int64         `json:"samples"`            // this miner's samples in the epoch
	Tokens        int64         `json:"tokens"`             // tokens this miner's process has trained on since it started
	TokensPerSec  float64       `json:"tokens_per_s"`       // the epoch's local training throughput
	Group         int           `json:"group"`              // members of the epoch's group; 0 when none formed
	Contributors  int           `json:"contributors"`       // members whose updates the mean holds (1 when alone)
	Alone         string        `json:"alone,omitempty"`    // why the epoch was not averaged with others
	Dropped       bool          `json:"dropped,omitempty"`  // the update was dropped: averaging failed while others were live (node/epoch)
	SyncTime      time.Duration `json:"sync_ns"`            // matchmaking and all-reduce
	RoundTime     time.Duration `json:"allreduce_ns"`       // the all-reduce rounds alone
	Span          int           `json:"span"`               // elements this miner reduced in its group's round
	Role          string        `json:"role,omitempty"`     // announced: full or client
	UpMbps        float64       `json:"up_mbps"`            // announced upload rate in Mbit/s, as measured; 0: none
	DownMbps      float64       `json:"down_mbps"`          // the same of the download rate
	BytesSent     int64         `json:"bytes_sent"`         // frame bytes this miner wrote in the epoch's all-reduce rounds
	BytesReceived int64         `json:"bytes_received"`     // frame bytes it read in them
	TrainTime     time.Duration `json:"train_ns"`
	Peers         int           `json:"peers"` // peers on the run's gossip at the epoch's end
	// ParamHash is the hash of the state the epoch ended with
	// (state.Hash of the state blob: parameters, step, and outer momentum
	// or AdamW state; its first 16 hex digits), the one the miner offers and its
	// progress reports carry: equal across a group that averaged.
	ParamHash string `json:"param_hash"`
	StartHash string `json:"start_hash"` // the same of the state the epoch started from (a dropped update: = ParamHash)
	DataHash  string `json:"data_hash"`  // what the miner trained on: sha256 of its micro-batches' windows and dropout seeds (laneDigest), first 16 hex digits
}

// Miner is one training peer.
type Miner struct {
	cfg   config.Miner
	opts  Options
	log   zerolog.Logger
	node  netx.Network
	self  string
	codec allreduce.Codec
	agg   allreduce.Aggregation // the run's all-reduce aggregation rule
	// verdicts are the run's validators' exclusions; the driver's loop
	// alone reads and updates them.
	verdicts *verdicts.Set
	cheat    *cheater      // nil: honest
	uplink   *rate.Limiter // net.upload_limit, shared by every round; nil: none
	// feedback carries int8 (or fp16/bf16) rounding error into the next
	// epoch's contribution; nil without compression.
	feedback *allreduce.ErrorFeedback

	gossip netx.Topic
	donor  *state.Donor
	link   linkMeter
	probes bool // serving link probes
	audits *p2p.Contributions
	// checkers are the group members that may fetch from audits.
	checkers checkers

	hub        *hub.Client   // nil without hub.repo
	publishing chan struct{} // holds a token while an upload runs
	hubHas     *uint64       // the epoch loaded from the hub, if any
	uploads    sync.WaitGroup

	live atomic.Pointer[Live] // the driver's last view of the swarm

	resumed bool      // New loaded the checkpoint in out_dir
	started time.Time // when Run began: train.max_minutes counts from here
	eventMu sync.Mutex

	model *torch.Model
	opt   *torch.AdamW
	order data.Order
	sched train.Schedule
	accum int

	epoch    uint64
	step     int       // local optimizer steps taken (diloco inner steps or gradient steps)
	tokens   int64     // trained by this process (a checkpoint does not hold it)
	momentum []float32 // diloco outer Nesterov buffer

	// fullEpochs (tests) takes every inner step even once others are
	// ready, so that the steps of an epoch are no matter of timing.
	fullEpochs bool
}

// New builds a miner: its model (fresh, from model.init), its optimizer,
// and its subscription to the run's gossip.
func New(ctx context.Context, o Options) (*Miner, error) {
	cfg := o.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("miner config: %w", err)
	}
	if o.Node == nil || o.Train == nil {
		return nil, errors.New("miner: a network node and training data are required")
	}
	codec, err := allreduce.ParseCodec(cfg.Swarm.Compress)
	if err != nil {
		return nil, err
	}
	agg, err := allreduce.ParseAggregation(cfg.Swarm.Aggregation)
	if err != nil {
		return nil, err
	}
	m := &Miner{cfg: cfg, opts: o, log: o.Log, node: o.Node, self: o.Node.ID().String(), codec: codec, agg: agg,
		accum: max(1, cfg.AccumSteps())}
	m.sched = schedule(cfg)
	m.uplink = p2p.NewUplinkLimit(cfg.Net.UploadBits())
	if m.cheat, err = newCheater(o.Cheat, o.Log); err != nil {
		return nil, err
	}
	dev, err := torch.ParseDevice(cfg.Device)
	if err != nil {
		return nil, err
	}
	if m.model, err = train.NewModel(cfg.Train, dev); err != nil {
		return nil, err
	}
	if err := train.CheckModel(m.model, cfg.Data.SeqLen); err != nil {
		m.Close()
		return nil, err
	}
	if m.opt, err = torch.NewAdamW(m.model, train.AdamWConfig(cfg.Optim)); err != nil {
		m.Close()
		return nil, err
	}
	if m.order, err = data.NewOrder(cfg.RunID, cfg.Seed, o.Train.Len()); err != nil {
		m.Close()
		return nil, err
	}
	if cfg.Swarm.Mode == "diloco" {
		m.momentum = make([]float32, m.model.NumParams())
	}
	if codec.ID() != allreduce.CodecNone {
		m.feedback = allreduce.NewErrorFeedback(codec, int(m.model.NumParams()))
	}
	if m.hub, err = m.hubClient(); err != nil {
		m.Close()
		return nil, err
	}
	m.publishing = make(chan struct{}, 1)
	if m.resumed, err = m.resume(); err != nil {
		m.Close()
		return nil, err
	}
	if m.resumed {
		m.log.Info().Uint64("epoch", m.epoch).Int("step", m.step).Str("checkpoint", m.checkpointPath()).Msg("resumed")
	}
	if m.gossip, err = o.Node.JoinGossip(ctx, cfg.RunID); err != nil {
		m.Close()
		return nil, err
	}
	epochnet.Handle(m.gossip, o.Roster)
	m.verdicts = verdicts.NewSet(func(p string) bool { return slices.Contains(cfg.Swarm.Validators, p) })
	m.donor = state.NewDonor(o.Node, m.stateProto(), state.DonorOptions{Run: cfg.RunID, Log: o.Log})
	// Served whether or not this miner measures its own link: the others'
	// spans are sized by theirs.
	netx.ServeProbes(o.Node, m.probeProto(), probeLimits)
	m.probes = true
	m.audits = p2p.ServeContributions(o.Node, AuditProtocol(cfg.RunID), p2p.AuditOptions{
		Keep: auditKeep, MaxConcurrent: auditConcurrent, Allow: m.auditor, Log: o.Log})
	return m, nil
}

// Live is the miner's view of the swarm at its last heartbeat.
type Live struct {
	Peers      int    // peers on the run's gossip
	SwarmEpoch uint64 // the swarm's epoch as the live reports make it
	Epoch      uint64 // the epoch the miner's state starts
	Phase      string // what its epoch waits for (node/epoch Phase)
}

// Live returns the miner's view of the swarm now: safe to call from any
// goroutine, while Run runs or after.
func (m *Miner) Live() Live {
	var l Live
	if p := m.live.Load(); p != nil {
		l = *p
	}
	if m.gossip != nil {
		l.Peers = len(m.gossip.Peers())
	}
	return l
}

// schedule is the learning-rate schedule of the miner's optimizer steps.
func schedule(cfg config.Miner) train.Schedule {
	return train.Schedule{LR: cfg.Optim.LR, MinLR: cfg.Optim.MinLR, Warmup: cfg.Optim.WarmupSteps, Total: cfg.Loop.MaxSteps}
}

// Close stops serving state and frees the model and optimizer; the network
// node is the caller's.
func (m *Miner) Close() {
	if m.donor != nil {
		m.donor.Close()
	}
	if m.audits != nil {
		m.audits.Close()
	}
	if m.probes {
		m.node.RemoveStreamHandler(m.probeProto())
	}
	if m.opt != nil {
		m.opt.Close()
	}
	if m.model != nil {
		m.model.Close()
	}
}

// Run trains epoch after epoch until ctx ends (then it returns nil), the
// run reaches epoch swarm.max_epochs, or the epoch in which
// train.max_minutes pass ends; with neither set it runs until stopped
// (train.max_steps is only the learning-rate schedule's length). It runs
// the epoch protocol of node/epoch: this goroutine owns the protocol's
// Machine and carries out its actions, the work they
// start (training, all-reduce rounds, state loads) runs in goroutines that
// end with ctx. Its last event is a StopEvent.
func (m *Miner) Run(ctx context.Context) (err error) {
	m.started = time.Now()
	gctx, stop := context.WithCancel(ctx)
	d := &driver{m: m, ctx: gctx, runCtx: ctx, done: make(chan func() ([]epoch.Action, error))}
	d.lossBits.Store(math.Float64bits(math.NaN()))
	defer func() {
		stop()
		d.work.Wait()
		m.uploads.Wait()
		why := d.stopped
		switch {
		case err != nil:
			why = "error"
		case why == "":
			why = "stopped"
		}
		m.log.Info().Uint64("epoch", m.epoch).Int("step", m.step).Str("reason", why).Msg("miner stopped")
		m.event(StopEvent{Epoch: m.epoch, Step: m.step, Reason: why, Err: errText(err)})
	}()
	mach, err := epoch.New(m.machineConfig())
	if err != nil {
		return err
	}
	d.mach = mach
	in := make(chan epochnet.Inbound, 1024)
	d.work.Add(1)
	go func() {
		defer d.work.Done()
		epochnet.Read(gctx, m.gossip, in)
	}()
	if m.opts.Roster != nil {
		d.work.Add(1)
		go func() {
			defer d.work.Done()
			epochnet.KeepRoster(gctx, m.node, m.gossip, m.opts.Roster, m.log)
		}()
	}
	m.log.Info().Str("peer", m.self).Str("mode", m.cfg.Swarm.Mode).Int64("params", m.model.NumParams()).Msg("miner started")
	m.live.Store(&Live{Epoch: m.epoch, Phase: "starting"}) // until the driver's first view
	m.awaitPeers(ctx)
	if len(m.gossip.Peers()) == 0 {
		// No peer can serve the swarm's state: the run's newest published
		// state is the best start there is.
		if _, err := m.loadFromHub(ctx); err != nil {
			m.log.Warn().Err(err).Msg("could not load the run's state from the hub")
			m.event(ErrorEvent{Epoch: m.epoch, Op: "hub load", Err: err.Error()})
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if d.stopped = m.finished(); d.stopped != "" {
		return nil
	}
	// The one copy of the parameters off the device until the next epoch's
	// update: the driver passes it along from here.
	params := make([]float32, m.model.NumParams())
	if err := m.model.Params(params); err != nil {
		return err
	}
	blob, err := m.encodeState(params)
	if err != nil {
		return err
	}
	hash, err := m.offerState(ctx, blob, nil)
	if err != nil {
		return err
	}
	d.params, d.hash = params, hash
	m.event(StartEvent{Peer: m.self, Mode: m.cfg.Swarm.Mode, Params: m.model.NumParams(), Epoch: m.epoch, Step: m.step,
		Resumed: m.resumed, Peers: len(m.gossip.Peers())})
	return d.loop(in)
}

// finished says why the miner should train no further ("max_epochs",
// "max_minutes"), or "" while it should: with neither set, never.
func (m *Miner) finished() string {
	switch lc := m.cfg.Loop; {
	case m.cfg.Swarm.MaxEpochs > 0 && m.epoch >= m.cfg.Swarm.MaxEpochs:
		return "max_epochs"
	case lc.MaxMinutes > 0 && time.Since(m.started).Minutes() >= lc.MaxMinutes:
		return "max_minutes"
	}
	return ""
}

// offerState makes blob, the miner's current state, the one it offers to
// peers and checkpoints, and publishes it to the hub when its turn comes
// (others: the live peers at its epoch; the upload runs under ctx). It
// returns the state's hash, the one its progress reports carry.
func (m *Miner) offerState(ctx context.Context, blob []byte, others []string) ([32]byte, error) {
	offer := m.donor.Offer(m.epoch, blob)
	if err := m.saveCheckpoint(blob); err != nil {
		return [32]byte{}, fmt.Errorf("checkpoint: %w", err)
	}
	m.maybePublish(ctx, blob, others)
	return offer.Hash, nil
}

// awaitPeers waits, up to swarm.match_seconds, until the run's gossip
// shows enough miners for a group (the run's validators contribute
// nothing): a miner that starts with others should
// not spend its first epoch alone because the topic mesh was still forming.
func (m *Miner) awaitPeers(ctx context.Context) {
	need := m.cfg.Swarm.MinGroup - 1
	deadline := time.Now().Add(time.Duration(m.cfg.Swarm.MatchSeconds * float64(time.Second)))
	for m.otherMiners() < need && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	m.log.Info().Int("peers", len(m.gossip.Peers())).Msg("joined the run's gossip")
}
