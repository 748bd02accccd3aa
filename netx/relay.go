package netx

import (
	"math"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// RelayLimit is what a circuit relay allows each connection it relays:
// the relay resets the connection after Duration, or once Data bytes have
// passed in either direction. A zero field is no limit on that count;
// the zero RelayLimit relays without limit.
//
// A relayed connection with a limit is "limited" to libp2p: protocols that
// do not opt in open no stream over it. Gossip, the DHT and hole punching
// opt in; an all-reduce round does not (a limit would cut it halfway), so
// only a relay without limits carries rounds.
type RelayLimit struct {
	Duration time.Duration
	Data     int64
}

// DefaultRelayLimit is libp2p's: 2 minutes and 128 KiB per direction,
// enough for a peer's control traffic, not for its rounds.
var DefaultRelayLimit = RelayLimit{Duration: 2 * time.Minute, Data: 128 << 10}

// Unlimited reports whether l limits nothing.
func (l RelayLimit) Unlimited() bool { return l.Duration <= 0 && l.Data <= 0 }

// String is "none", or the limits as "128 KiB, 2m0s".
func (l RelayLimit) String() string {
	if l.Unlimited() {
		return "none"
	}
	var parts []string
	if l.Data > 0 {
		parts = append(parts, humanize.IBytes(uint64(l.Data)))
	}
	if l.Duration > 0 {
		parts = append(parts, l.Duration.String())
	}
	return strings.Join(parts, ", ")
}

// relayBufferSize is the copy buffer of each direction of a relayed
// connection on a relay without limits: libp2p's 2 KiB default costs a
// read and a write per 2 KiB, too many for an all-reduce's gigabytes.
const relayBufferSize = 64 << 10

// relayOptions are the relay service's options for limit l.
func relayOptions(l RelayLimit) []relayv2.Option {
	rc := relayv2.DefaultResources()
	if l.Unlimited() {
		rc.Limit = nil
		rc.BufferSize = relayBufferSize
		return []relayv2.Option{relayv2.WithResources(rc)}
	}
	// libp2p's limit has both counts; a zero one is as good as none.
	lim := relayv2.RelayLimit{Duration: l.Duration, Data: l.Data}
	if lim.Duration <= 0 {
		lim.Duration = math.MaxUint32 * time.Second // the wire's largest (uint32 seconds)
	}
	if lim.Data <= 0 {
		lim.Data = math.MaxInt64
	}
	rc.Limit = &lim
	return []relayv2.Option{relayv2.WithResources(rc)}
}

// LimitedOnly reports whether every connection h has to p is a limited
// relayed one (so no stream that does not opt in can reach p until a
// direct connection appears), with the limit the relay announced (the
// loosest, when there are several). It is false when h has no connection
// to p, or when h cannot tell (a Host without a libp2p network).
func LimitedOnly(h Host, p peer.ID) (RelayLimit, bool) {
	var nw network.Network
	switch h := h.(type) {
	case *Node:
		nw = h.host.Network()
	case interface{ Network() network.Network }:
		nw = h.Network()
	default:
		return RelayLimit{}, false
	}
	conns := nw.ConnsToPeer(p)
	var loosest RelayLimit
	for _, c := range conns {
		st := c.Stat()
		if !st.Limited {
			return RelayLimit{}, false
		}
		var l RelayLimit
		if d, ok := st.Extra[client.StatLimitDuration].(time.Duration); ok {
			l.Duration = d
		}
		if b, ok := st.Extra[client.StatLimitData].(uint64); ok {
			l.Data = int64(min(b, math.MaxInt64))
		}
		loosest = RelayLimit{Duration: max(loosest.Duration, l.Duration), Data: max(loosest.Data, l.Data)}
	}
	return loosest, len(conns) > 0
}

// IsRelayed reports whether c runs through a circuit relay.
func IsRelayed(c network.Conn) bool {
	_, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}
