package netx

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// TestReachability: a node that serves as a relay declares itself public,
// and a node without NAT traversal has nothing to say.
func TestReachability(t *testing.T) {
	ctx := context.Background()
	cfg := Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, RelayService: true}
	pub, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	cfg.RelayService = false
	plain, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	deadline := time.Now().Add(5 * time.Second)
	for pub.Reachability() != network.ReachabilityPublic {
		if time.Now().After(deadline) {
			t.Fatalf("relay node: reachability %v, want public", pub.Reachability())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := plain.Reachability(); r != network.ReachabilityUnknown {
		t.Fatalf("node without NAT traversal: reachability %v, want unknown", r)
	}
}
