package config

import (
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// validate checks the network's addresses: a listen address that is not a
// multiaddr, and a bootstrap address that does not name its peer
// (/p2p/<id>), which libp2p cannot dial and which would otherwise fail only
// when the node starts.
func (n Net) validate(c *check) {
	for _, a := range n.Listen {
		if !strings.HasPrefix(a, "/") {
			c.fail("net.listen", "addresses are multiaddrs such as /ip4/1.2.3.4/udp/4001/quic-v1", a)
		}
	}
	for _, a := range n.Bootstrap {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			c.fail("net.bootstrap", "must list full multiaddrs ending in the peer's id, such as "+
				"/ip4/1.2.3.4/udp/4001/quic-v1/p2p/12D3KooW… (the peer logs its own, and dtrain bootstrap prints it)", a)
		}
	}
}
