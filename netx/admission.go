package netx

import (
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// admissionGater refuses every connection, inbound or outbound, with a
// peer that admit refuses, once the peer's identity is known (after the
// security handshake) and before any stream: such a peer can neither
// gossip, serve nor ask anything of this node. The node's bootstrap peers
// are always admitted.
type admissionGater struct {
	admit func(peer.ID) bool
	boot  map[peer.ID]bool
}

func newAdmissionGater(admit func(peer.ID) bool, boot []peer.AddrInfo) *admissionGater {
	g := &admissionGater{admit: admit, boot: map[peer.ID]bool{}}
	for _, b := range boot {
		g.boot[b.ID] = true
	}
	return g
}

func (g *admissionGater) ok(p peer.ID) bool { return g.boot[p] || g.admit(p) }

// InterceptPeerDial refuses to dial a peer not admitted (one a DHT lookup
// returned, say).
func (g *admissionGater) InterceptPeerDial(p peer.ID) bool { return g.ok(p) }

func (g *admissionGater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.ok(p) }

func (g *admissionGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured refuses an authenticated connection of a peer not
// admitted, either way.
func (g *admissionGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.ok(p)
}

func (g *admissionGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// Admits reports whether the node's admission takes p: always in an open
// run (no Config.Admit).
func (n *Node) Admits(p peer.ID) bool { return n.gate == nil || n.gate.ok(p) }

// Prune closes the connections with every peer the node's admission no
// longer takes (after a new roster dropped it) and returns how many it
// closed. In an open run it closes none.
func (n *Node) Prune() int {
	if n.gate == nil {
		return 0
	}
	closed := 0
	for _, p := range n.host.Network().Peers() {
		if !n.gate.ok(p) {
			_ = n.host.Network().ClosePeer(p)
			closed++
		}
	}
	return closed
}
