package netx

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// staleAfter is how old a connection must be for a new one from the same
// peer to mark it as its previous process's.
var staleAfter = 5 * time.Second

// settleAfter is how long a restarted peer's new connection is left alone
// before it is closed and dialled back (its own Connect, identify and
// bootstrap finish first); redialTimeout bounds the dial back.
var settleAfter, redialTimeout = time.Second, 10 * time.Second

// supersede starts afresh with a peer that connects again while an older
// connection to it is open: a miner that crashed and restarted keeps its
// identity (and, with a fixed listen port, the default, its address), and
// the connection to its old process looks alive until QUIC's 30 s idle
// timeout, swallowing the gossip and streams meant for the new one.
// Closing only the old connection is not enough: gossipsub then sees a
// peer "dead but still connected" and respawns its writer, at most 4 times
// in 10 minutes (go-libp2p-pubsub's dead-peer backoff), after which it
// never writes to that peer again while connected, and a miner restarted
// a few times hears its swarm one way only. So every connection to the
// peer is closed, which gossipsub takes as the peer leaving, and the peer
// is dialled back (it redials too, through the run's discovery, should
// this side not reach it): every protocol starts with it afresh.
// Connections younger than staleAfter are left alone (a simultaneous dial,
// QUIC and TCP at once). Only an inbound connection supersedes: the
// restarted peer is the one dialing, and a live peer does not dial again
// while it holds a connection (libp2p reuses it).
type supersede struct{}

func (supersede) Connected(n network.Network, c network.Conn) {
	if c.Stat().Direction != network.DirInbound {
		return
	}
	now, p := time.Now(), c.RemotePeer()
	stale := false
	for _, old := range n.ConnsToPeer(p) {
		stale = stale || (old != c && now.Sub(old.Stat().Opened) >= staleAfter)
	}
	if !stale {
		return
	}
	go func() {
		time.Sleep(settleAfter)
		_ = n.ClosePeer(p)
		time.Sleep(settleAfter)
		ctx, cancel := context.WithTimeout(context.Background(), redialTimeout)
		defer cancel()
		_, _ = n.DialPeer(ctx, p) // failing, the peer's own discovery redials
	}()
}

func (supersede) Disconnected(network.Network, network.Conn) {}
func (supersede) Listen(network.Network, ma.Multiaddr)       {}
func (supersede) ListenClose(network.Network, ma.Multiaddr)  {}
