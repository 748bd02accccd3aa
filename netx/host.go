package netx

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// DHT modes for Config.DHTMode.
const (
	DHTAuto   = "auto"   // server once AutoNAT finds the node publicly reachable
	DHTServer = "server" // answer DHT queries: reachable nodes, bootstrap nodes
	DHTClient = "client" // only query: peers behind NAT
)

// dhtPrefix keeps dtrain's DHT apart from the public IPFS (Amino) DHT.
const dhtPrefix = "/dtrain"

// DefaultListenAddrs listen on QUIC first and TCP as the fallback, on all
// IPv4 interfaces and a free port.
var DefaultListenAddrs = []string{"/ip4/0.0.0.0/udp/0/quic-v1", "/ip4/0.0.0.0/tcp/0"}

// Config configures New. Its zero value is a DHT-auto node with an
// ephemeral key, the default listen addresses and no NAT traversal;
// DefaultConfig turns NAT traversal on.
type Config struct {
	ListenAddrs   []string // multiaddrs to listen on; DefaultListenAddrs when empty
	AnnounceAddrs []string // when set, the only addresses announced to peers (e.g. a public IP behind port forwarding)
	KeyFile       string   // identity key file (LoadOrCreateKey); empty: an ephemeral key
	Bootstrap     []string // full multiaddrs with /p2p/<id> of bootstrap peers
	DHTMode       string   // DHTAuto (default), DHTServer or DHTClient
	RelayService  bool     // serve as a circuit relay for NATed peers; opt in on public nodes only
	// RelayLimit bounds each connection the relay service relays;
	// nil: DefaultRelayLimit.
	RelayLimit *RelayLimit
	EnableNAT  bool // AutoNAT, UPnP port mapping, hole punching (DCUtR) and the auto-relay client
	ConnLow    int  // connection manager low water mark; 100 when 0
	ConnHigh   int  // connection manager high water mark; 400 when 0

	// MaxGossipSize caps an encoded gossip message; DefaultMaxGossipSize when 0.
	MaxGossipSize int
	// DialTimeout bounds each dial to a bootstrap or run peer; 15 s when 0.
	DialTimeout time.Duration
	// Admit, when set, is the run's admission: connections with any peer
	// it refuses (but the bootstrap peers) are refused both ways, so a
	// stranger to an allowlisted run reaches nothing of this node, and
	// gossip authored by such a peer is neither delivered nor relayed. It
	// is called at every connection and may change its answers (a new
	// roster); Prune then drops the peers it no longer admits.
	Admit func(peer.ID) bool
	// Log receives the node's events; the zero Logger drops them.
	Log zerolog.Logger
	// Metrics, when set, receives go-libp2p's own metrics (libp2p_*:
	// connections, streams, identify, relay, hole punching, …); nil: off.
	Metrics prometheus.Registerer
}

// DefaultConfig is the configuration for a peer on the internet: default
// listen addresses, DHT mode auto, NAT traversal on.
func DefaultConfig() Config {
	return Config{ListenAddrs: append([]string(nil), DefaultListenAddrs...), DHTMode: DHTAuto, EnableNAT: true}
}

// Node is a running libp2p host with its DHT, the runs it joined and (once
// a run asks for gossip) its pubsub router.
type Node struct {
	host host.Host
	dht  *dht.IpfsDHT
	cfg  Config
	gate *admissionGater // nil in an open run

	ctx    context.Context    // lives until Close
	cancel context.CancelFunc // ends everything started by New

	ps *pubsub.PubSub // the node's gossipsub router, shared by its runs

	reach atomic.Int32 // network.Reachability, from AutoNAT's events

	mu     sync.Mutex
	runs   map[string]*Run
	closed bool
}

// New starts a libp2p host listening on cfg.ListenAddrs, starts its DHT,
// connects to the bootstrap peers in parallel and bootstraps the DHT. It
// fails if bootstrap peers were given and none could be reached before
// cfg.DialTimeout. The node lives until Close, not until ctx ends: ctx
// bounds only the start.
func New(ctx context.Context, cfg Config) (*Node, error) {
	cfg, boot, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var gate *admissionGater
	if cfg.Admit != nil {
		gate = newAdmissionGater(cfg.Admit, boot)
	}
	opts, err := hostOptions(cfg, boot, gate)
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	mode, _ := dhtMode(cfg.DHTMode)
	kad, err := dht.New(h, dht.Mode(mode), dht.ProtocolPrefix(dhtPrefix),
		dht.BootstrapPeers(boot...))
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("start DHT: %w", err)
	}
	h.Network().Notify(supersede{})
	nctx, cancel := context.WithCancel(context.Background())
	n := &Node{host: h, dht: kad, cfg: cfg, gate: gate, ctx: nctx, cancel: cancel, runs: map[string]*Run{}}
	if err := n.watchReachability(nctx, h); err != nil {
		n.Close()
		return nil, err
	}
	if n.ps, err = newPubSub(nctx, h); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.connectBootstrap(ctx, boot); err != nil {
		n.Close()
		return nil, err
	}
	if err := kad.Bootstrap(nctx); err != nil {
		n.Close()
		return nil, fmt.Errorf("bootstrap DHT: %w", err)
	}
	return n, nil
}

func (cfg Config) withDefaults() (Config, []peer.AddrInfo, error) {
	if len(cfg.ListenAddrs) == 0 {
		cfg.ListenAddrs = DefaultListenAddrs
	}
	if cfg.DHTMode == "" {
		cfg.DHTMode = DHTAuto
	}
	if _, err := dhtMode(cfg.DHTMode); err != nil {
		return cfg, nil, err
	}
	if cfg.ConnLow == 0 {
		cfg.ConnLow = 100
	}
	if cfg.ConnHigh == 0 {
		cfg.ConnHigh = max(400, cfg.ConnLow)
	}
	if cfg.ConnLow < 0 || cfg.ConnHigh < cfg.ConnLow {
		return cfg, nil, fmt.Errorf("connection limits: low %d, high %d: want 0 <= low <= high", cfg.ConnLow, cfg.ConnHigh)
	}
	if cfg.MaxGossipSize == 0 {
		cfg.MaxGossipSize = DefaultMaxGossipSize
	}
	if cfg.MaxGossipSize < 0 || cfg.MaxGossipSize > maxGossipSizeLimit {
		return cfg, nil, fmt.Errorf("max gossip size %d: want 1..%d bytes", cfg.MaxGossipSize, maxGossipSizeLimit)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 15 * time.Second
	}
	boot, err := ParseAddrInfos(cfg.Bootstrap)
	if err != nil {
		return cfg, nil, fmt.Errorf("bootstrap peers: %w", err)
	}
	return cfg, boot, nil
}

func dhtMode(s string) (dht.ModeOpt, error) {
	switch s {
	case DHTAuto:
		return dht.ModeAuto, nil
	case DHTServer:
		return dht.ModeServer, nil
	case DHTClient:
		return dht.ModeClient, nil
	}
	return 0, fmt.Errorf("DHT mode %q: want %s, %s or %s", s, DHTAuto, DHTServer, DHTClient)
}

// ParseAddrInfos parses full multiaddrs (with /p2p/<id>), merging the
// addresses of the same peer.
func ParseAddrInfos(addrs []string) ([]peer.AddrInfo, error) {
	mas := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", s, err)
		}
		mas = append(mas, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("addresses %q (each needs /p2p/<peer id>): %w", addrs, err)
	}
	return infos, nil
}

func hostOptions(cfg Config, boot []peer.AddrInfo, gate *admissionGater) ([]libp2p.Option, error) {
	key, err := nodeKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	rm, err := newResourceManager()
	if err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	// libp2p's defaults already give QUIC and TCP transports with TLS 1.3
	// and Noise; the listen order puts QUIC first.
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
	}
	if cfg.Metrics != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Metrics))
	} else {
		opts = append(opts, libp2p.DisableMetrics()) // never the global Prometheus registry
	}
	if gate != nil {
		opts = append(opts, libp2p.ConnectionGater(gate))
	}
	if len(cfg.AnnounceAddrs) > 0 {
		announce := make([]ma.Multiaddr, 0, len(cfg.AnnounceAddrs))
		for _, s := range cfg.AnnounceAddrs {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				return nil, fmt.Errorf("announce address %q: %w", s, err)
			}
			announce = append(announce, a)
		}
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return announce }))
	}
	if cfg.RelayService {
		// The relay service starts only on a publicly reachable node; an
		// operator who opts in asserts that, so don't wait for AutoNAT.
		limit := DefaultRelayLimit
		if cfg.RelayLimit != nil {
			limit = *cfg.RelayLimit
		}
		opts = append(opts, libp2p.EnableRelayService(relayOptions(limit)...), libp2p.EnableNATService(), libp2p.ForceReachabilityPublic())
	}
	if cfg.EnableNAT {
		opts = append(opts, libp2p.NATPortMap(), libp2p.EnableHolePunching(), libp2p.EnableRelay())
		if len(boot) > 0 {
			// Bootstrap nodes are the relays of last resort for peers
			// that cannot accept inbound connections.
			opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(boot))
		}
	}
	return opts, nil
}

func nodeKey(path string) (crypto.PrivKey, error) {
	if path != "" {
		return LoadOrCreateKey(path)
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("generate ephemeral key: %w", err)
	}
	return key, nil
}

// resourceLimits keeps libp2p's scaled defaults for what remote peers
// together can make us hold open (connections, file descriptors, total
// memory: 1/8 of RAM by AutoScale) and replaces the per-stream,
// per-connection, per-peer and per-protocol caps. libp2p's are tuned for
// IPFS's many small requests: a tensor stream needs its muxer window to
// grow to full size and an all-reduce opens many parallel streams to a few
// peers, and those caps silently shrink windows (throttling goodput) or
// refuse streams (437 of 512 probe streams to one peer,
// TestManyConcurrentStreamsToOnePeer). A peer may hold
// peerStreams streams each way and a quarter of the system's memory: what
// the all-reduce needs, and no one peer can take the whole budget.
func resourceLimits() rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.AutoScale()
	peerMem := base.ToPartialLimitConfig().System.Memory / 4
	open := rcmgr.ResourceLimits{
		Streams: rcmgr.Unlimited, StreamsInbound: rcmgr.Unlimited, StreamsOutbound: rcmgr.Unlimited,
		Memory: rcmgr.Unlimited64,
	}
	perPeer := rcmgr.ResourceLimits{
		Streams: 2 * peerStreams, StreamsInbound: peerStreams, StreamsOutbound: peerStreams, Memory: peerMem,
	}
	partial := rcmgr.PartialLimitConfig{
		Stream: open, Conn: rcmgr.ResourceLimits{Memory: peerMem},
		PeerDefault: perPeer, ProtocolDefault: open, ProtocolPeerDefault: perPeer,
		ServiceDefault: open, ServicePeerDefault: perPeer,
		Transient: rcmgr.ResourceLimits{Memory: rcmgr.Unlimited64},
	}
	return partial.Build(base)
}

// peerStreams is how many streams one peer may hold open each way.
const peerStreams = 1024

func newResourceManager() (network.ResourceManager, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits()))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return rm, nil
}

// connectBootstrap dials every bootstrap peer in parallel, each within the
// dial timeout, and fails only if all of them fail.
func (n *Node) connectBootstrap(ctx context.Context, boot []peer.AddrInfo) error {
	if len(boot) == 0 {
		return nil
	}
	errs := make([]error, len(boot))
	var g errgroup.Group
	for i, ai := range boot {
		g.Go(func() error {
			dctx, cancel := context.WithTimeout(ctx, n.cfg.DialTimeout)
			defer cancel()
			if err := n.host.Connect(dctx, ai); err != nil {
				errs[i] = fmt.Errorf("connect to bootstrap peer %s: %w", ai.ID, err)
			}
			return nil
		})
	}
	_ = g.Wait()
	for _, err := range errs {
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("no bootstrap peer reachable: %w", errors.Join(errs...))
}

// Close leaves every run, stops the DHT and closes the host.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	runs := make([]*Run, 0, len(n.runs))
	for _, r := range n.runs {
		runs = append(runs, r)
	}
	n.mu.Unlock()
	for _, r := range runs {
		r.Close()
	}
	n.cancel()
	errDHT := n.dht.Close()
	errHost := closeWithin(n.host, hostCloseTimeout)
	if err := errors.Join(errDHT, errHost); err != nil {
		return fmt.Errorf("close node %s: %w", n.ID(), err)
	}
	return nil
}

// hostCloseTimeout bounds how long Close waits for the libp2p host.
const hostCloseTimeout = 15 * time.Second

// closeWithin closes c, waiting at most d. go-libp2p's host Close can wait
// forever: once, in a full test run, its AutoNAT's Close waited on an event
// bus lock held by an identify emitter that was blocked sending to a
// subscriber nobody read any more. A node that closes, as a miner that
// stops, must not hang on that: past d the close goes on in the
// background and this returns an error.
func closeWithin(c io.Closer, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("libp2p host did not close within %v; left closing in the background", d)
	}
}

// ID is the node's peer id, derived from its identity key.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Addrs are the node's full multiaddrs (ending in /p2p/<id>) as peers
// should dial them: the announce addresses when configured, otherwise the
// listen addresses, QUIC first.
func (n *Node) Addrs() []string {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.ID(), Addrs: n.host.Addrs()})
	if err != nil {
		return nil
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	// Peers dial in the order given: QUIC first, TCP as the fallback.
	slices.SortStableFunc(out, func(a, b string) int {
		return cmp.Compare(quicRank(a), quicRank(b))
	})
	return out
}

// Host is the underlying libp2p host.
func (n *Node) Host() host.Host { return n.host }

// NewStream opens a stream to p on the first of pids that p speaks. With
// SetStreamHandler and RemoveStreamHandler it makes the node a Host.
func (n *Node) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	return n.host.NewStream(ctx, p, pids...)
}

// SetStreamHandler serves pid's inbound streams with handler.
func (n *Node) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	n.host.SetStreamHandler(pid, handler)
}

// RemoveStreamHandler stops serving pid.
func (n *Node) RemoveStreamHandler(pid protocol.ID) { n.host.RemoveStreamHandler(pid) }

// DHT is the node's Kademlia DHT.
func (n *Node) DHT() *dht.IpfsDHT { return n.dht }

func quicRank(addr string) int {
	if strings.Contains(addr, "/quic-v1") {
		return 0
	}
	return 1
}
