package netx

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
)

// Reachability is whether other peers can dial this node, as AutoNAT last
// found it: network.ReachabilityPublic, ReachabilityPrivate (behind a NAT
// or firewall: it can dial out but accepts no inbound connection), or
// ReachabilityUnknown (not found yet, or NAT traversal is off). AutoNAT
// tests only public addresses, and needs a peer that serves it (a
// bootstrap node with its relay service does).
func (n *Node) Reachability() network.Reachability {
	return network.Reachability(n.reach.Load())
}

// watchReachability keeps n.reach at the host's last reachability event
// until ctx ends.
func (n *Node) watchReachability(ctx context.Context, h host.Host) error {
	sub, err := h.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		return fmt.Errorf("subscribe to reachability: %w", err)
	}
	go func() {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				r := e.(event.EvtLocalReachabilityChanged).Reachability
				n.reach.Store(int32(r))
				n.cfg.Log.Info().Str("reachability", r.String()).Msg("reachability changed")
			}
		}
	}()
	return nil
}
