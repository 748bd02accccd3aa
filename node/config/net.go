package config

import (
	"fmt"
	"strconv"
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
	if _, err := ParseRate(n.UploadLimit); n.UploadLimit != "" && err != nil {
		c.fail("net.upload_limit", "must be empty (no limit) or a rate such as 190Mbit or 1Gbit", n.UploadLimit)
	}
	for _, a := range n.Bootstrap {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			c.fail("net.bootstrap", "must list full multiaddrs ending in the peer's id, such as "+
				"/ip4/1.2.3.4/udp/4001/quic-v1/p2p/12D3KooW… (the peer logs its own, and dtrain bootstrap prints it)", a)
		}
	}
}

// UploadBits is net.upload_limit in bits per second, 0 when empty (no
// limit). Validate has checked it.
func (n Net) UploadBits() float64 {
	r, _ := ParseRate(n.UploadLimit)
	return r
}

// ParseRate reads a tc-style rate in bits per second: "200Mbit", "1Gbit",
// "500Kbit", "9600bit" (powers of 1000; a bare number is bits), positive
// and at most 1 Tbit.
func ParseRate(s string) (float64, error) {
	u := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, suf := range []struct {
		s string
		m float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if strings.HasSuffix(u, suf.s) {
			u, mult = strings.TrimSuffix(u, suf.s), suf.m
			break
		}
	}
	v, err := strconv.ParseFloat(u, 64)
	if err != nil || !(v > 0) || v*mult > 1e12 {
		return 0, fmt.Errorf("%q is not a rate like 200Mbit", s)
	}
	return v * mult, nil
}
