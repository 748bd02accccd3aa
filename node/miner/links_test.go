package miner

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
)

// reachNode is a node whose AutoNAT verdict the test sets; linkRole
// calls nothing else of it.
type reachNode struct {
	netx.Network
	reach network.Reachability
}

func (n reachNode) Reachability() network.Reachability { return n.reach }

// TestLinkRole: on swarm.role = auto a miner that AutoNAT finds private
// (behind a NAT: others reach it only through a relay or a punched hole)
// announces the client role, which contributes and reduces nothing; one
// found public, or not found yet, announces full; an explicit setting wins.
func TestLinkRole(t *testing.T) {
	for _, tc := range []struct {
		setting string
		reach   network.Reachability
		want    matchmaking.Role
	}{
		{"auto", network.ReachabilityPrivate, matchmaking.Client},
		{"auto", network.ReachabilityPublic, matchmaking.Full},
		{"auto", network.ReachabilityUnknown, matchmaking.Full},
		{"full", network.ReachabilityPrivate, matchmaking.Full},
		{"client", network.ReachabilityPublic, matchmaking.Client},
	} {
		cfg := config.DefaultMiner()
		cfg.Swarm.Role = tc.setting
		m := &Miner{cfg: cfg, node: reachNode{reach: tc.reach}}
		if got := m.linkRole(); got != tc.want {
			t.Errorf("swarm.role %s, reachability %v: role %v, want %v", tc.setting, tc.reach, got, tc.want)
		}
	}
}
