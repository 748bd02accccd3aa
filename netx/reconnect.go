package netx

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// staleAfter is how old a connection must be for a new one from the same
// peer, from another address, to replace it.
var staleAfter = 5 * time.Second

// supersede closes a peer's older connections when it connects again from
// another address: a miner that crashed and restarted keeps its identity
// but gets a new port, and the connection to its old process would
// otherwise look alive until QUIC's 30 s idle timeout, swallowing the
// gossip and streams meant for the new one. Connections younger than
// staleAfter are left alone (a simultaneous dial, QUIC and TCP at once).
// Only an inbound connection supersedes: the restarted peer is the one
// dialing, and this side never closes what it dialed itself.
type supersede struct{}

func (supersede) Connected(n network.Network, c network.Conn) {
	now := time.Now()
	for _, old := range n.ConnsToPeer(c.RemotePeer()) {
		if old != c && c.Stat().Direction == network.DirInbound && !old.RemoteMultiaddr().Equal(c.RemoteMultiaddr()) &&
			now.Sub(old.Stat().Opened) >= staleAfter {
			go old.Close()
		}
	}
}

func (supersede) Disconnected(network.Network, network.Conn) {}
func (supersede) Listen(network.Network, ma.Multiaddr)       {}
func (supersede) ListenClose(network.Network, ma.Multiaddr)  {}
