package miner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/progress"
	"github.com/dtrain-dev/dtrain/node/state"
)

// heartbeat is how often a miner repeats its progress report. A peer
// silent for reportExpiry is gone: matchmaking stops waiting for it and it
// no longer counts toward the swarm epoch.
const (
	heartbeat    = time.Second
	reportExpiry = 10 * heartbeat
)

// swarmView is the miner's progress.Tracker and its own report, shared by
// the gossip reader, the heartbeat and the epoch loop.
type swarmView struct {
	mu      sync.Mutex
	tracker *progress.Tracker
	own     progress.Report
	live    bool // publishing: set once the miner holds the swarm's state
}

// trackerNow is the tracker's clock: time since the Unix epoch.
func trackerNow() time.Duration { return time.Duration(time.Now().UnixNano()) }

func (v *swarmView) observe(r progress.Report) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.tracker.Observe(trackerNow(), r)
}

// peersAt lists the live peers other than self reporting epoch.
func (v *swarmView) peersAt(epoch uint64) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.tracker.Peers(trackerNow(), epoch)
}

// update changes the miner's own report and returns a copy.
func (v *swarmView) update(f func(r *progress.Report)) progress.Report {
	v.mu.Lock()
	defer v.mu.Unlock()
	f(&v.own)
	return v.own
}

// heartbeatLoop publishes the miner's report every heartbeat until ctx
// ends, once the miner is live.
func (m *Miner) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.publishProgress(ctx)
		}
	}
}

// publishProgress sends the miner's current report if it is live.
func (m *Miner) publishProgress(ctx context.Context) {
	m.view.mu.Lock()
	r, live := m.view.own, m.view.live
	m.view.mu.Unlock()
	if !live {
		return
	}
	r.Time = time.Now().UnixMilli()
	body, err := r.Marshal()
	if err == nil {
		err = m.gossip.Publish(ctx, netx.GossipMessage{Type: progress.GossipType, Body: body})
	}
	if err != nil && ctx.Err() == nil {
		m.log.Debug().Err(err).Msg("publish progress")
	}
}

// startEpoch makes the miner's current state the one it offers, reports
// and checkpoints: called whenever the miner begins an epoch.
func (m *Miner) startEpoch(ctx context.Context) error {
	blob, err := m.encodeState()
	if err != nil {
		return err
	}
	offer := m.donor.Offer(m.epoch, blob)
	if err := m.saveCheckpoint(blob); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	m.maybePublish(ctx, blob)
	m.view.update(func(r *progress.Report) {
		r.Epoch, r.Samples, r.StateHash, r.Offers = m.epoch, 0, offer.Hash, true
	})
	m.view.mu.Lock()
	m.view.live = true
	m.view.mu.Unlock()
	m.publishProgress(ctx)
	return nil
}

// errNoDonor means the swarm is ahead but nobody offers its state yet.
var errNoDonor = errors.New("no peer offers the swarm's state")

// catchUp loads the swarm's state from peers when the swarm is at a later
// epoch than this miner. It reports whether it loaded a state.
func (m *Miner) catchUp(ctx context.Context) (bool, error) {
	now := trackerNow()
	m.view.mu.Lock()
	behind := m.view.tracker.Behind(now, m.epoch)
	target := m.view.tracker.SwarmEpoch(now)
	m.view.mu.Unlock()
	if !behind || !m.cfg.Swarm.StateFromPeers {
		return false, nil
	}
	return true, m.loadFromPeers(ctx, target, false)
}

// diverged reports whether most peers at this miner's epoch started it
// from another state than this miner's: in gradients mode all must hold
// the same parameters, so such a miner reloads the majority's state.
func (m *Miner) diverged() bool {
	m.view.mu.Lock()
	defer m.view.mu.Unlock()
	own := m.view.own.StateHash
	majority, _ := m.view.tracker.HashAgreement(trackerNow(), m.epoch)
	return majority != ([32]byte{}) && own != majority && len(m.view.tracker.Donors(trackerNow(), m.epoch)) > 0
}

// loadFromPeers downloads the majority's state of epoch from the peers
// that offer it and makes it this miner's.
func (m *Miner) loadFromPeers(ctx context.Context, epoch uint64, diverged bool) error {
	now := trackerNow()
	m.view.mu.Lock()
	majority, _ := m.view.tracker.HashAgreement(now, epoch)
	donors := m.view.tracker.Donors(now, epoch)
	m.view.mu.Unlock()
	if len(donors) == 0 || majority == ([32]byte{}) {
		return fmt.Errorf("swarm at epoch %d, this miner at %d: %w", epoch, m.epoch, errNoDonor)
	}
	ids := make([]peer.ID, 0, len(donors))
	for _, d := range donors {
		if id, err := peer.Decode(d); err == nil {
			ids = append(ids, id)
		}
	}
	want := state.Offer{Run: m.cfg.RunID, Epoch: epoch, Hash: majority, Size: stateSize(m.cfg.Swarm.Mode, m.model.NumParams())}
	blob, stats, err := state.Fetch(ctx, m.node, m.stateProto(), want, ids, state.FetchOptions{})
	if err != nil {
		return fmt.Errorf("load state of epoch %d from %d peers: %w", epoch, len(ids), err)
	}
	from := m.epoch
	if err := m.loadState(blob); err != nil {
		return err
	}
	if m.epoch != epoch {
		return fmt.Errorf("donors' state is of epoch %d, the swarm's is %d", m.epoch, epoch)
	}
	params := make([]float32, m.model.NumParams())
	if err := m.model.Params(params); err != nil {
		return err
	}
	rate := float64(len(blob)) * 8 / 1e6 / stats.Took.Seconds()
	m.log.Info().Uint64("epoch", epoch).Uint64("from_epoch", from).Bool("diverged", diverged).Int("bytes", len(blob)).
		Dur("took", stats.Took).Float64("mbps", rate).Int("donors", len(stats.Bytes)).Str("param_hash", paramHash(params)).
		Msg("state loaded")
	return nil
}

func (m *Miner) stateProto() protocol.ID { return netx.Protocol(m.cfg.RunID, "state") }

// lanePeers are the peers this miner shares the epoch's data order with:
// itself and those reporting the epoch, or, before any report, those on
// the run's gossip.
func (m *Miner) lanePeers() []string {
	peers := append([]string{m.self}, m.view.peersAt(m.epoch)...)
	if len(peers) == 1 {
		for _, p := range m.gossip.Peers() {
			peers = append(peers, p.String())
		}
	}
	slices.Sort(peers)
	return slices.Compact(peers)
}
