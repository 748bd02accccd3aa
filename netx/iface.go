package netx

import (
	"context"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Host is what the algorithms in node/ need from a peer's network: its
// identity and protocol streams to other peers. A libp2p host satisfies
// it.
type Host interface {
	ID() peer.ID
	NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error)
	SetStreamHandler(pid protocol.ID, handler network.StreamHandler)
	RemoveStreamHandler(pid protocol.ID)
}

// Topic is a run's broadcast channel: signed, validated, typed messages,
// and the peers subscribed to it. *Gossip satisfies it.
type Topic interface {
	Handle(typ string, validate ValidateFunc)
	Publish(ctx context.Context, m GossipMessage) error
	Next(ctx context.Context) (peer.ID, GossipMessage, error)
	Peers() []peer.ID
}

// Network is a node as a role in node/ uses it: a Host for protocol
// streams, and the gossip of the runs it joins (their stream protocols are
// named by Protocol). *Node satisfies it, so a role takes a Network rather
// than a libp2p node. *Node is the only implementation: node/sim does not
// stand behind these interfaces, it delivers the protocol state machines'
// messages itself, with virtual time.
type Network interface {
	Host
	JoinGossip(ctx context.Context, run string) (Topic, error)
	// Admits reports whether the node's admission takes a peer, and Prune
	// closes the connections with the peers it no longer takes.
	Admits(p peer.ID) bool
	Prune() int
}

var (
	_ Host    = host.Host(nil)
	_ Topic   = (*Gossip)(nil)
	_ Network = (*Node)(nil)
)
