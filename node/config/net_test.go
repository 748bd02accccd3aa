package config

import (
	"strings"
	"testing"
)

// Two peer ids for addresses and lists.
const (
	peerA = "12D3KooWAbV1V6a9yGG9hAuhBXDAJk1jPnDR8CEdNq3ZrqQpT1Ru"
	peerB = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
)

// TestBootstrapNeedsPeerID: a bootstrap address without /p2p/<id> fails
// the check, not the start, in a miner's and a validator's config.
func TestBootstrapNeedsPeerID(t *testing.T) {
	full := "/ip4/1.2.3.4/udp/4001/quic-v1/p2p/" + peerA
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{full, true},
		{"/dns4/boot.example.org/tcp/4001/p2p/" + peerB, true},
		{"/ip4/1.2.3.4/udp/4001/quic-v1", false},
		{"1.2.3.4:4001", false},
		{"/ip4/1.2.3.4/tcp/4001/p2p/notapeer", false},
	} {
		m, v := DefaultMiner(), DefaultValidator()
		m.Net.Bootstrap, v.Net.Bootstrap = []string{tc.addr}, []string{full, tc.addr}
		for role, err := range map[string]error{"miner": m.Validate(), "validator": v.Validate()} {
			switch {
			case tc.ok && err != nil:
				t.Errorf("%s bootstrap %s: %v", role, tc.addr, err)
			case !tc.ok && (err == nil || !strings.Contains(err.Error(), "net.bootstrap: must list full multiaddrs ending in the peer's id, such as /ip4/1.2.3.4/udp/4001/quic-v1/p2p/12D3KooW")):
				t.Errorf("%s bootstrap %s: err %v, want the expected form", role, tc.addr, err)
			}
		}
	}
}
