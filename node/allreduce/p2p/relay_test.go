package p2p

import (
	"bytes"
	"context"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/allreduce"
)

// relayedNodes starts a relay with limit and n nodes on loopback QUIC that
// reach each other only through it: each reserves a slot, and each dials
// the others' circuit addresses, never a direct one.
func relayedNodes(t *testing.T, ctx context.Context, n int, limit netx.RelayLimit) []*netx.Node {
	t.Helper()
	rcfg := loopbackConfig()
	rcfg.RelayService, rcfg.RelayLimit = true, &limit
	relay := startNode(t, ctx, rcfg)
	relayInfo := peer.AddrInfo{ID: relay.ID(), Addrs: relay.Host().Addrs()}
	nodes := make([]*netx.Node, n)
	for i := range nodes {
		nd := startNode(t, ctx, loopbackConfig())
		if err := nd.Host().Connect(ctx, relayInfo); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Reserve(ctx, nd.Host(), relayInfo); err != nil {
			t.Fatalf("reserve a slot at the relay: %v", err)
		}
		nodes[i] = nd
	}
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			circuit, err := ma.NewMultiaddr(relayInfo.Addrs[0].String() + "/p2p/" + relay.ID().String() + "/p2p-circuit")
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Host().Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
				t.Fatalf("connect through the relay: %v", err)
			}
		}
	}
	return nodes
}

// runRelayed runs one uncompressed round among nodes and returns every
// member's result and error, with what the transport logged.
func runRelayed(t *testing.T, ctx context.Context, nodes []*netx.Node, n int, round time.Duration) ([]allreduce.Result, []error, string) {
	t.Helper()
	var g allreduce.Group
	peers := make([]peer.ID, len(nodes))
	for i, nd := range nodes {
		peers[i] = nd.ID()
		g.Members = append(g.Members, allreduce.Member{ID: nd.ID().String(), Role: allreduce.RoleFull, Weight: 1})
	}
	vecs := randomVectors(rand.New(rand.NewSource(5)), g, n)
	base := roundConfig(t, g, n, 1<<12, noneCodec)
	minerTimeouts(&base, round)
	var logs bytes.Buffer
	lctx := zerolog.New(zerolog.SyncWriter(&logs)).Level(zerolog.WarnLevel).WithContext(ctx)
	results, errs := runMembers(t, lctx, nodes, peers, base, vecs, -1)
	if want := allMembers(g); len(errs) == len(want) {
		for _, i := range want {
			if errs[i] == nil && len(results[i].Contributors) == len(nodes) {
				checkLoopback(t, g, vecs, results, want, want, noneCodec)
				break
			}
		}
	}
	return results, errs, logs.String()
}

// A relay without limits carries a round like a direct connection: its
// relayed connections are not limited, every member ends with every
// contribution (checked against the exact mean) and nothing is logged.
func TestRunRoundThroughUnlimitedRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nodes := relayedNodes(t, ctx, 3, netx.RelayLimit{})
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			if _, only := netx.LimitedOnly(a.Host(), b.ID()); only {
				t.Fatal("a relay without limits gave a limited connection")
			}
			for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
				if !netx.IsRelayed(c) {
					t.Fatalf("a direct connection %s: the test wants the relay's", c.RemoteMultiaddr())
				}
			}
		}
	}
	results, errs, logs := runRelayed(t, ctx, nodes, 1<<18, 10*time.Second)
	for i := range nodes {
		if errs[i] != nil || len(results[i].Contributors) != len(nodes) {
			t.Fatalf("member %d: contributors %v, err %v", i, results[i].Contributors, errs[i])
		}
	}
	if logs != "" {
		t.Fatalf("logged %s", logs)
	}
}

// Over a relay with libp2p's default limits (128 KiB, 2 minutes: a round
// of 1 MiB would be cut halfway), no round data is sent: each member
// reduces alone, and says why at warn level, naming the relay's limits.
func TestRunRoundNotThroughLimitedRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nodes := relayedNodes(t, ctx, 2, netx.DefaultRelayLimit)
	l, only := netx.LimitedOnly(nodes[0].Host(), nodes[1].ID())
	if !only || l != netx.DefaultRelayLimit {
		t.Fatalf("LimitedOnly = %v, %v; want %v, true", l, only, netx.DefaultRelayLimit)
	}
	results, errs, logs := runRelayed(t, ctx, nodes, 1<<18, 4*time.Second)
	for i := range nodes {
		if errs[i] == nil && len(results[i].Contributors) > 1 {
			t.Fatalf("member %d averaged %v through a limited relay", i, results[i].Contributors)
		}
	}
	if n := strings.Count(logs, "reachable only through a relay with limits"); n != len(nodes) {
		t.Fatalf("%d warnings, want one per member:\n%s", n, logs)
	}
	if !strings.Contains(logs, `"relay_limit":"128 KiB, 2m0s"`) {
		t.Fatalf("the warning does not name the relay's limits:\n%s", logs)
	}
}
