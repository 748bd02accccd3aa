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
// it; node/sim provides a simulated one.
type Host interface {
	ID() peer.ID
	NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error)
	SetStreamHandler(pid protocol.ID, handler network.StreamHandler)
	RemoveStreamHandler(pid protocol.ID)
}

// Topic is a run's broadcast channel: signed, validated, typed messages.
// *Gossip satisfies it; node/sim provides a simulated one.
type Topic interface {
	Publish(ctx context.Context, m GossipMessage) error
	Next(ctx context.Context) (peer.ID, GossipMessage, error)
}

var (
	_ Host  = host.Host(nil)
	_ Topic = (*Gossip)(nil)
)
