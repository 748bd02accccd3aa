package netx

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// MaxRunIDLen bounds a run id, which appears in DHT keys, topics and
// protocol ids.
const MaxRunIDLen = 64

// Discovery timing. A run's membership grows fastest right after peers
// start, so lookups and advertisements begin fast and back off: an early
// advertisement reaches only the few DHT peers known then, and is redone
// as the routing table fills.
const (
	findFirst      = 500 * time.Millisecond // first re-lookup interval
	findEvery      = 30 * time.Second       // steady-state re-lookup interval
	findTimeout    = 30 * time.Second       // one provider lookup
	advertiseFirst = 2 * time.Second        // first re-advertisement
	advertiseRetry = 5 * time.Second        // after a failed advertisement (e.g. empty routing table)
	maxRunPeers    = 1000                   // providers returned by one lookup
	// Provider records are anyone's to put, so what a lookup returns is
	// bounded in what it costs: members kept (and protected from the
	// connection manager's trimming), dials per lookup and at once, and
	// how long a member no lookup returns and that is not connected stays.
	maxRunMembers   = 4096
	maxDialsPerFind = 64
	maxDialsAtOnce  = 16
	memberTTL       = 3 * findEvery
)

// memberProtocol is the name (see Protocol) every member of a run serves:
// identify tells connected peers so, which makes them members to each
// other (watchMembers).
const memberProtocol = "member"

// ErrBadRunID reports a run id that is empty, too long or has characters
// outside [A-Za-z0-9._-].
var ErrBadRunID = errors.New("bad run id")

// ErrRunJoined reports a second JoinRun for a run the node is already in.
var ErrRunJoined = errors.New("run already joined")

// ValidateRunID checks that id is 1..MaxRunIDLen characters of [A-Za-z0-9._-].
func ValidateRunID(id string) error {
	if id == "" || len(id) > MaxRunIDLen {
		return fmt.Errorf("%w %q: want 1..%d characters", ErrBadRunID, id, MaxRunIDLen)
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w %q: character %q is not one of [A-Za-z0-9._-]", ErrBadRunID, id, c)
		}
	}
	return nil
}

// Run is a node's membership in one training run: it advertises the node
// under the run's DHT rendezvous key and keeps connecting to the run's
// other peers until the JoinRun context ends or Close.
type Run struct {
	node *Node
	id   string
	ns   string
	disc *routing.RoutingDiscovery

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	members map[peer.ID]time.Time // peers found under this run's rendezvous key, when last found
	gossip  *Gossip
	closed  bool
}

// JoinRun advertises the node as a member of run runID on the DHT and
// starts connecting to the run's peers in the background, until ctx ends
// or the Run (or the Node) is closed.
func (n *Node) JoinRun(ctx context.Context, runID string) (*Run, error) {
	if err := ValidateRunID(runID); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("join run %s: node closed", runID)
	}
	if _, ok := n.runs[runID]; ok {
		return nil, fmt.Errorf("join run %s: %w", runID, ErrRunJoined)
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &Run{
		node: n, id: runID, ns: "dtrain/v1/run/" + runID,
		disc: routing.NewRoutingDiscovery(n.dht),
		ctx:  rctx, cancel: cancel, members: map[peer.ID]time.Time{},
	}
	sub, err := n.host.EventBus().Subscribe([]any{new(event.EvtPeerIdentificationCompleted), new(event.EvtPeerProtocolsUpdated)})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("join run %s: %w", runID, err)
	}
	n.runs[runID] = r
	n.host.SetStreamHandler(r.Protocol(memberProtocol), r.serveMembers)
	r.wg.Add(3)
	go r.advertiseLoop()
	go r.connectLoop()
	go r.watchMembers(sub)
	context.AfterFunc(rctx, func() { r.Close() })
	return r, nil
}

// ID is the run id.
func (r *Run) ID() string { return r.id }

// Protocol is the stream protocol id for name in run runID, version
// 1.0.0: "/dtrain/<run>/<name>/1.0.0". Peers of different runs never speak
// each other's protocols.
func Protocol(runID, name string) protocol.ID {
	return protocol.ID("/dtrain/" + runID + "/" + name + "/1.0.0")
}

// Protocol is the stream protocol id for name in this run (see Protocol).
func (r *Run) Protocol(name string) protocol.ID { return Protocol(r.id, name) }

// FindPeers looks up the run's members on the DHT once and returns them
// without the node itself. Without a deadline on ctx it gives up after 30 s.
func (r *Run) FindPeers(ctx context.Context) ([]peer.AddrInfo, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, findTimeout)
		defer cancel()
	}
	ch, err := r.disc.FindPeers(ctx, r.ns, discovery.Limit(maxRunPeers))
	if err != nil {
		return nil, fmt.Errorf("find peers of run %s: %w", r.id, err)
	}
	var found []peer.AddrInfo
	for ai := range ch {
		if ai.ID == r.node.ID() || ai.ID == "" {
			continue
		}
		found = append(found, ai)
	}
	r.mu.Lock()
	r.remember(time.Now(), found)
	r.mu.Unlock()
	return found, nil
}

// watchMembers adds to the members every peer that identifies itself as
// one: it speaks the run's member protocol. That claim is worth what a
// provider record under the run's key is (anyone can make either), and it
// makes membership symmetric: a member that dials another after finding
// it is a member to the one it dialled too, without a lookup of its own.
func (r *Run) watchMembers(sub event.Subscription) {
	defer r.wg.Done()
	defer sub.Close()
	mp := r.Protocol(memberProtocol)
	var known []peer.AddrInfo
	for _, p := range r.node.host.Network().Peers() {
		if ok, _ := r.node.host.Peerstore().SupportsProtocols(p, mp); len(ok) > 0 {
			known = append(known, peer.AddrInfo{ID: p})
		}
	}
	r.add(time.Now(), known)
	for {
		select {
		case <-r.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			var p peer.ID
			var protos, removed []protocol.ID
			switch e := e.(type) {
			case event.EvtPeerIdentificationCompleted:
				p, protos = e.Peer, e.Protocols
			case event.EvtPeerProtocolsUpdated:
				p, protos, removed = e.Peer, e.Added, e.Removed
			}
			switch {
			case p == r.node.ID():
			case slices.Contains(protos, mp):
				r.add(time.Now(), []peer.AddrInfo{{ID: p}})
			case slices.Contains(removed, mp):
				r.leave(p) // it left the run (Close), though still connected
			}
		}
	}
}

// leave forgets member p.
func (r *Run) leave(p peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.members[p]; ok {
		delete(r.members, p)
		r.node.host.ConnManager().Unprotect(p, r.ns)
	}
}

// add is remember without forgetting, for members found one at a time.
func (r *Run) add(now time.Time, found []peer.AddrInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addLocked(now, found)
}

// addLocked records found as members seen at now; past maxRunMembers,
// new ones are not kept. Kept members' connections are protected from the
// connection manager's trimming.
func (r *Run) addLocked(now time.Time, found []peer.AddrInfo) {
	for _, ai := range found {
		if _, ok := r.members[ai.ID]; !ok {
			if len(r.members) >= maxRunMembers {
				continue
			}
			r.node.host.ConnManager().Protect(ai.ID, r.ns)
		}
		r.members[ai.ID] = now
	}
}

// remember records the members a lookup found at now and forgets those no
// lookup returned for memberTTL that are not connected; past
// maxRunMembers, new ones are not kept. Kept members' connections are
// protected from the connection manager's trimming.
func (r *Run) remember(now time.Time, found []peer.AddrInfo) {
	for p, seen := range r.members {
		if now.Sub(seen) > memberTTL && r.node.host.Network().Connectedness(p) != network.Connected {
			delete(r.members, p)
			r.node.host.ConnManager().Unprotect(p, r.ns)
		}
	}
	r.addLocked(now, found)
}

// Peers are the run's members the node is connected to now, sorted.
func (r *Run) Peers() []peer.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []peer.ID
	for p := range r.members {
		if r.node.host.Network().Connectedness(p) == network.Connected {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// advertiseLoop puts the node's provider record under the run's key and
// renews it: soon after joining (the DHT is still filling), then at 7/8 of
// the record's TTL. util.Advertise would wait two minutes after a failed
// first attempt, which is most of a short run's start.
func (r *Run) advertiseLoop() {
	defer r.wg.Done()
	wait := advertiseFirst
	for {
		ttl, err := r.disc.Advertise(r.ctx, r.ns)
		next := advertiseRetry
		if err == nil {
			next = min(wait, 7*ttl/8)
			wait *= 2
		} else if r.ctx.Err() == nil {
			r.node.cfg.Log.Debug().Err(err).Str("run", r.id).Msg("advertise run")
		}
		if !sleepCtx(r.ctx, next) {
			return
		}
	}
}

// connectLoop looks the run's peers up and connects to the new ones, and
// to those one connected member knows (exchange), quickly while this finds
// new peers, every 30 s once stable.
func (r *Run) connectLoop() {
	defer r.wg.Done()
	wait := findFirst
	for {
		found, err := r.FindPeers(r.ctx)
		if err != nil && r.ctx.Err() == nil {
			r.node.cfg.Log.Debug().Err(err).Str("run", r.id).Msg("find run peers")
		}
		if r.connect(found)+r.connect(r.exchange()) > 0 {
			wait = findFirst
		} else {
			wait = min(2*wait, findEvery)
		}
		if !sleepCtx(r.ctx, wait) {
			return
		}
	}
}

// connect dials up to maxDialsPerFind of the found peers not yet
// connected, maxDialsAtOnce at a time, each with the node's dial timeout,
// and returns how many new connections it made.
func (r *Run) connect(found []peer.AddrInfo) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	slots := make(chan struct{}, maxDialsAtOnce)
	for _, ai := range toDial(found, func(p peer.ID) bool { return r.node.host.Network().Connectedness(p) == network.Connected }) {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			ctx, cancel := context.WithTimeout(r.ctx, r.node.cfg.DialTimeout)
			defer cancel()
			if err := r.node.host.Connect(ctx, ai); err != nil {
				r.node.cfg.Log.Debug().Err(err).Str("run", r.id).Stringer("peer", ai.ID).Msg("connect to run peer")
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return n
}

// toDial picks the peers to dial from a lookup: those not connected, at
// most maxDialsPerFind of them, drawn at random so that a lookup full of
// fake records cannot keep the real members out of every round.
func toDial(found []peer.AddrInfo, connected func(peer.ID) bool) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, ai := range found {
		if !connected(ai.ID) {
			out = append(out, ai)
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:min(len(out), maxDialsPerFind)]
}

// Close stops advertising and connecting, leaves the run's gossip topic
// and releases the run's protected connections. Connections stay open.
func (r *Run) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.node.host.RemoveStreamHandler(r.Protocol(memberProtocol))
	r.cancel()
	r.wg.Wait()
	var err error
	r.mu.Lock()
	if r.gossip != nil {
		err = r.gossip.close()
	}
	for p := range r.members {
		r.node.host.ConnManager().Unprotect(p, r.ns)
	}
	r.mu.Unlock()
	r.node.mu.Lock()
	if r.node.runs[r.id] == r {
		delete(r.node.runs, r.id)
	}
	r.node.mu.Unlock()
	return err
}

// sleepCtx waits d or until ctx ends, and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
