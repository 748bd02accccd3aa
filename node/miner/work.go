package miner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/allreduce/p2p"
	"github.com/dtrain-dev/dtrain/node/epoch"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/state"
)

// loadTimeout bounds one state load from peers; state.Fetch moves a
// stalled donor's chunks to the others well before it.
const loadTimeout = 5 * time.Minute

// train starts the epoch's local work from the current parameters.
func (d *driver) train() error {
	m := d.m
	start := d.params
	if start == nil {
		return errors.New("no parameters to start the epoch from")
	}
	lane, e := m.epochLane(), m.epoch
	// Training changes the model: d.params holds again once a state is
	// set (advance, restore, install).
	d.start, d.vec, d.mean, d.params, d.contribution, d.groupContribution = start, nil, nil, nil, nil, nil
	d.mach.SetContribution(nil)
	d.ev = EpochEvent{Epoch: m.epoch, Peer: m.self, Mode: m.cfg.Swarm.Mode, StartHash: shortHash(d.hash)}
	d.training = true
	d.maybeProbe(m.epoch)
	d.othersReady.Store(false)
	d.others.Store(nil)
	d.samples.Store(0) // the rate stays the last epoch's until this one's first step
	d.goWork(func(ctx context.Context) func() ([]epoch.Action, error) {
		t0 := time.Now()
		vec, loss, samples, err := m.localWork(ctx, start, lane, d)
		took := time.Since(t0)
		claimed := float64(samples)
		if err == nil {
			vec, claimed = m.cheat.contribution(ctx, e, vec, samples)
		}
		return func() ([]epoch.Action, error) {
			d.training = false
			if ctx.Err() != nil {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			d.vec = vec
			d.commit()
			d.ev.Loss, d.ev.Samples, d.ev.TrainTime, d.ev.DataHash = loss, samples, took, lane.trained.sum()
			if took > 0 {
				d.ev.TokensPerSec = float64(samples) * float64(m.cfg.Data.SeqLen) / took.Seconds()
			}
			d.trainEnd = time.Now()
			// The reports from now until the epoch ends carry its final
			// samples: with the miner's id and epoch, all anyone needs to
			// recompute what it trained on (node/data Lane).
			d.mach.SetProgress(uint64(claimed), math.Float64frombits(d.rateBits.Load()))
			d.mach.SetLoss(loss)
			d.mach.SetNeighbours(m.neighbours())
			role, rates := m.announce()
			d.mach.SetLink(role, rates.Bandwidth())
			d.ev.Role, d.ev.UpMbps, d.ev.DownMbps = role.String(), mbps(rates.Up), mbps(rates.Down)
			return d.mach.Trained(clock(), claimed), nil
		}
	})
	return nil
}

// average runs the all-reduce round an Average action asks for, over this
// miner's update (stage 1) or its group's mean (stage 2).
func (d *driver) average(a epoch.Action) {
	m := d.m
	vec, opts, c := d.vec, matchmaking.RoundOptions{Codec: m.codec, Aggregation: m.agg, Feedback: m.feedback}, d.contribution
	if a.Stage == 2 {
		// The group's mean is no contribution of this miner's own: its
		// rounding error is not this miner's to carry on. It was
		// committed, without error feedback, when the group's round ended
		// (groupCommit).
		vec, opts, c = d.mean, matchmaking.RoundOptions{Codec: m.codec, Aggregation: m.agg}, d.groupContribution
	}
	if c != nil {
		opts.Contribution = c
		m.serveContribution(a.Group, c)
	}
	g, groups := a.Group, d.mach.Groups()
	d.goWork(func(ctx context.Context) func() ([]epoch.Action, error) {
		res, st, err := m.runRound(ctx, g, vec, opts)
		var check ownerCheck
		var checkTook time.Duration
		if err == nil && m.cfg.Swarm.CheckOwners {
			t0 := time.Now()
			check = m.checkOwners(ctx, st.round, opts.Contribution)
			checkTook = time.Since(t0)
			m.log.Debug().Uint64("epoch", a.Epoch).Stringer("check", check).Dur("took_ms", checkTook).Msg("owners checked")
			if len(check.liars) > 0 {
				err = fmt.Errorf("epoch %d: %w: %v", a.Epoch, errLyingOwner, check.liars)
			}
		}
		var groupC *allreduce.Contribution
		if err == nil && a.Stage == 1 && groups > 1 {
			groupC = m.groupCommit(g, res)
		}
		return func() ([]epoch.Action, error) {
			for _, id := range check.liars {
				d.mach.Distrust(id)
			}
			if groupC != nil {
				d.groupContribution = groupC
				d.mach.SetGroupContribution(groupC)
			}
			var ids []string
			var weight float64
			if err == nil {
				if len(res.Contributors) == contributing(g) {
					// Without failures its bytes are what it moved.
					m.noteRound(st.sent, st.took)
				}
				d.mean = res.Vector
				for _, i := range res.Contributors {
					ids = append(ids, g.Members[i].ID)
					weight += g.Members[i].Weight
				}
			} else if ctx.Err() == nil {
				m.log.Warn().Err(err).Uint64("epoch", a.Epoch).Int("stage", a.Stage).Msg("all-reduce")
			}
			if ctx.Err() == nil {
				m.event(RoundEvent{Epoch: a.Epoch, Stage: a.Stage, Members: len(g.Members), Contributors: len(res.Contributors),
					Took: st.took, BytesSent: st.traffic.Sent, BytesReceived: st.traffic.Received,
					Checked: check.checked, Unchecked: check.unchecked, CheckTook: checkTook, Err: errText(err)})
			}
			d.ev.BytesSent += st.traffic.Sent
			d.ev.BytesReceived += st.traffic.Received
			d.ev.RoundTime += st.took
			if a.Stage == 1 {
				d.ev.Span = st.span
				if err == nil {
					m.cheat.sawRound(g, m.self, len(vec), m.cfg.Swarm.Validators)
				}
			}
			return d.mach.Averaged(clock(), a.Stage, ids, weight, err), nil
		}
	})
}

// contributing counts g's members that contribute a vector.
func contributing(g matchmaking.Group) int {
	n := 0
	for _, mb := range g.Members {
		if mb.Role != matchmaking.Aux {
			n++
		}
	}
	return n
}

// roundStats is what a round moved: the payload bytes a round without
// failures makes this miner send (as many as it receives), in how long,
// the elements of its own span, and the frame bytes it wrote and read on
// the round's streams, as counted.
type roundStats struct {
	sent    int64
	took    time.Duration
	span    int
	traffic p2p.Traffic
	round   *allreduce.Round
}

// runRound runs group g's all-reduce round over vec and returns the mean.
func (m *Miner) runRound(ctx context.Context, g matchmaking.Group, vec []float32, opts matchmaking.RoundOptions) (allreduce.Result, roundStats, error) {
	var st roundStats
	if vec == nil {
		return allreduce.Result{}, st, fmt.Errorf("epoch %d: no vector to average", g.Epoch)
	}
	timeout := time.Duration(m.cfg.Swarm.RoundSeconds * float64(time.Second))
	opts.Timeout = timeout
	cfg, err := g.RoundConfig(m.self, vec, opts)
	if err != nil {
		return allreduce.Result{}, st, err
	}
	peers, err := p2p.Peers(cfg.Group)
	if err != nil {
		return allreduce.Result{}, st, err
	}
	r, err := allreduce.NewRound(cfg)
	if err != nil {
		return allreduce.Result{}, st, err
	}
	for _, s := range cfg.Spans {
		if s.Peer == cfg.Self {
			st.span = s.Len()
		}
	}
	// The round ends by its own deadlines; this one only bounds a
	// transport that would not.
	ctx, cancel := context.WithTimeout(ctx, 2*timeout)
	defer cancel()
	proto := netx.Protocol(m.cfg.RunID, g.RoundName())
	start := time.Now()
	res, traffic, err := p2p.RunRoundRewriting(m.log.WithContext(ctx), m.node, proto, peers, r, 10*time.Millisecond, m.cheat.rewrite(g.Epoch, cfg), p2p.WithUplinkLimit(m.uplink))
	st.sent, st.took, st.traffic, st.round = cfg.SentBytes(), time.Since(start), traffic, r
	if err != nil {
		return res, st, fmt.Errorf("all-reduce of epoch %d: %w", g.Epoch, err)
	}
	return res, st, nil
}

// load fetches the state a Load action names from its donors.
func (d *driver) load(a epoch.Action) {
	m := d.m
	mode, numel := stateMode(m.cfg.Swarm.Mode), m.model.NumParams()
	d.goWork(func(ctx context.Context) func() ([]epoch.Action, error) {
		fctx, cancel := context.WithTimeout(ctx, loadTimeout)
		_, blob, stats, err := state.Load(fctx, m.node, m.cfg.RunID, a.Epoch, a.Hash, a.Donors, mode, numel, state.FetchOptions{})
		cancel()
		if err != nil {
			err = fmt.Errorf("load state of epoch %d from %d peers: %w", a.Epoch, len(a.Donors), err)
		}
		return func() ([]epoch.Action, error) {
			if ctx.Err() != nil {
				return nil, nil
			}
			ev := LoadEvent{Epoch: a.Epoch, FromEpoch: m.epoch, Source: "peers", Bytes: int64(len(blob)), Took: stats.Took,
				Donors: len(stats.Bytes), BytesPerSec: float64(len(blob)) / max(stats.Took.Seconds(), 1e-9)}
			if err == nil {
				err = d.install(blob, a.Hash, stats)
			}
			if err != nil {
				m.log.Warn().Err(err).Msg("could not load the swarm's state")
				ev.Bytes, ev.BytesPerSec, ev.Donors, ev.Err = 0, 0, len(a.Donors), err.Error()
			} else {
				ev.ParamHash = shortHash(d.hash)
			}
			m.event(ev)
			return d.mach.Loaded(clock(), a.Epoch, a.Hash, err), nil
		}
	})
}

// install makes a loaded blob, whose hash Fetch verified, the miner's
// state, offered and checkpointed.
func (d *driver) install(blob []byte, hash [32]byte, stats state.FetchStats) error {
	m := d.m
	from := m.epoch
	params, err := m.loadState(blob)
	if err != nil {
		return err
	}
	d.params, d.hash = params, hash
	d.start, d.vec, d.mean = nil, nil, nil
	if _, err := m.offerState(d.runCtx, blob, d.atEpoch()); err != nil {
		return err
	}
	rate := float64(len(blob)) * 8 / 1e6 / max(stats.Took.Seconds(), 1e-9)
	m.log.Info().Uint64("epoch", m.epoch).Uint64("from_epoch", from).Int("bytes", len(blob)).
		Dur("took_ms", stats.Took).Float64("mbps", rate).Int("donors", len(stats.Bytes)).Str("param_hash", shortHash(hash)).
		Msg("state loaded")
	return nil
}

// neighbours are the peers on the run's gossip.
func (m *Miner) neighbours() []string {
	ps := m.gossip.Peers()
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.String()
	}
	return ids
}

// atEpoch are the other live peers at the miner's epoch or the one before:
// those that may hold its state, since the others of a group advance
// together but report at slightly different moments.
func (d *driver) atEpoch() []string {
	now, e := clock(), d.m.epoch
	peers := d.mach.Peers(now, e)
	if e > 0 {
		peers = append(peers, d.mach.Peers(now, e-1)...)
	}
	return peers
}
