package miner

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/links"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
)

// A miner probes its link to probePeers peers when it starts and again
// every probeEvery epochs (but not within probeQuiet of the last time),
// within probeTimeout; between probes its rounds' bytes and times keep the
// estimate current.
const (
	probePeers   = 3
	probeEvery   = 10
	probeQuiet   = 5 * time.Minute
	probeTimeout = 30 * time.Second
)

// probeLimits is what a miner serves other peers' probes with: a session
// of another miner (both directions, ≤ links.MaxProbeBytes each) fits a
// peer's budget twice per window, and the run's strangers together get at
// most a few hundred MB per window.
var probeLimits = netx.ProbeLimits{
	MaxBytes: links.MaxProbeBytes, PeerBytes: 4 * links.MaxProbeBytes, TotalBytes: 32 * links.MaxProbeBytes,
	Window: 10 * time.Minute, Streams: 8, PeerStreams: 2, StreamTime: time.Minute,
}

// reachability is what a libp2p node (*netx.Node) tells about itself.
type reachability interface {
	Reachability() network.Reachability
}

// linkMeter holds what the miner knows about its own link: the rate
// estimate (fed by the probe goroutine and the driver) and what it last
// announced; mu guards it all.
type linkMeter struct {
	mu        sync.Mutex
	est       links.Estimator
	probing   bool
	probed    bool
	probedAt  uint64 // epoch of the last probe
	probeTime time.Time
	announced links.Rates
	role      matchmaking.Role
}

func (m *Miner) probeProto() protocol.ID { return netx.Protocol(m.cfg.RunID, "probe") }

// linkRole is the role the miner announces: swarm.role, with auto meaning
// client while AutoNAT finds the miner unreachable.
func (m *Miner) linkRole() matchmaking.Role {
	switch m.cfg.Swarm.Role {
	case "client":
		return matchmaking.Client
	case "full":
		return matchmaking.Full
	}
	if r, ok := m.node.(reachability); ok && r.Reachability() == network.ReachabilityPrivate {
		return matchmaking.Client
	}
	return matchmaking.Full
}

// announce is the role and bandwidth the miner's next Ready carries; a
// new role, or a rate 10% off the last one logged, is logged.
func (m *Miner) announce() (matchmaking.Role, links.Rates) {
	role := m.linkRole()
	l := &m.link
	l.mu.Lock()
	var rates links.Rates
	if m.cfg.Swarm.MeasureLinks {
		rates = l.est.Rates()
	}
	roleChanged, ratesChanged := role != l.role, moved(l.announced.Up, rates.Up) || moved(l.announced.Down, rates.Down)
	l.role = role
	if ratesChanged {
		l.announced = rates
	}
	l.mu.Unlock()
	if roleChanged {
		m.log.Info().Str("role", role.String()).Str("setting", m.cfg.Swarm.Role).Msg("all-reduce role")
	}
	if ratesChanged {
		m.log.Info().Float64("up_mbps", mbps(rates.Up)).Float64("down_mbps", mbps(rates.Down)).
			Float64("bandwidth_mbps", mbps(rates.Bandwidth())).Msg("link rates")
	}
	if roleChanged || ratesChanged {
		m.event(AnnounceEvent{Role: role.String(), Setting: m.cfg.Swarm.Role, UpMbps: mbps(rates.Up), DownMbps: mbps(rates.Down)})
	}
	return role, rates
}

// noteRound adds a round's bytes (a member receives as many as it sends)
// over its time to the estimate.
func (m *Miner) noteRound(bytes int64, took time.Duration) {
	m.link.mu.Lock()
	defer m.link.mu.Unlock()
	m.link.est.Add(links.Round, links.Up, bytes, took)
	m.link.est.Add(links.Round, links.Down, bytes, took)
}

// maybeProbe starts a probe of the miner's link in d's work group when one
// is due at epoch.
func (d *driver) maybeProbe(epoch uint64) {
	m, l := d.m, &d.m.link
	if !m.cfg.Swarm.MeasureLinks {
		return
	}
	l.mu.Lock()
	due := !l.probing && (!l.probed || (epoch >= l.probedAt+probeEvery && time.Since(l.probeTime) >= probeQuiet))
	if due {
		l.probing, l.probed, l.probedAt, l.probeTime = true, true, epoch, time.Now()
	}
	n := l.est.ProbeBytes()
	l.mu.Unlock()
	if !due {
		return
	}
	peers := m.gossip.Peers()
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	d.work.Add(1)
	go func() {
		defer d.work.Done()
		probed := m.probeLinks(d.ctx, peers, n)
		l.mu.Lock()
		// With no peer to probe yet, the next epoch tries again.
		l.probing, l.probed = false, probed > 0
		l.mu.Unlock()
	}()
}

// probeLinks times an upload and a download of n bytes with up to
// probePeers of peers (in order, skipping those that do not answer), adds
// the fastest of each direction to the estimate (a probe runs at the
// slower of two links, so the fastest peer tells most about this one), and
// returns how many peers it probed.
func (m *Miner) probeLinks(ctx context.Context, peers []peer.ID, n int64) int {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var best [2]netx.BandwidthResult
	done := 0
	for _, p := range peers {
		if done == probePeers || ctx.Err() != nil {
			break
		}
		ok := false
		for i, dir := range []netx.Direction{netx.Upload, netx.Download} {
			r, err := netx.MeasureBandwidth(ctx, m.node, p, m.probeProto(), n, dir)
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					m.log.Debug().Err(err).Str("peer", p.String()).Msg("link probe")
				}
				break
			}
			ok = true
			if r.BitsPerSecond > best[i].BitsPerSecond {
				best[i] = r
			}
		}
		if ok {
			done++
		}
	}
	if done == 0 {
		return 0
	}
	l := &m.link
	l.mu.Lock()
	for i, dir := range []links.Direction{links.Up, links.Down} {
		l.est.Add(links.Probe, dir, best[i].Bytes, best[i].Took)
	}
	l.mu.Unlock()
	m.log.Info().Int("peers", done).Int64("bytes", n).Float64("up_mbps", best[0].BitsPerSecond/1e6).
		Float64("down_mbps", best[1].BitsPerSecond/1e6).Msg("link probed")
	m.event(ProbeEvent{Peers: done, Bytes: n, UpMbps: best[0].BitsPerSecond / 1e6, DownMbps: best[1].BitsPerSecond / 1e6})
	return done
}

// moved reports whether rate is 10% or more off was (or one of them is 0
// and the other not).
func moved(was, rate float64) bool {
	return math.Abs(rate-was) >= 0.1*max(was, rate) && rate != was
}

// mbps is a rate in bytes/s as Mbit/s.
func mbps(bytesPerSecond float64) float64 { return bytesPerSecond * 8 / 1e6 }
