package netx

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestJoinGossip: two nodes used as Networks, the way the roles in node/
// take them, join a run's gossip, find each other on it and exchange a
// typed message from its signed author; a second join of the run is
// refused, and the run's stream protocols are Protocol's.
func TestJoinGossip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	boot := startNode(t)
	nets := []Network{boot, startNode(t, boot.Addrs()...)}
	topics := make([]Topic, len(nets))
	for i, n := range nets {
		tp, err := n.JoinGossip(ctx, "join-gossip")
		if err != nil {
			t.Fatal(err)
		}
		tp.Handle("hello", nil)
		topics[i] = tp
	}
	if _, err := nets[1].JoinGossip(ctx, "join-gossip"); !errors.Is(err, ErrRunJoined) {
		t.Fatalf("second join: %v, want ErrRunJoined", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for i, tp := range topics {
		for len(tp.Peers()) < 1 {
			if time.Now().After(deadline) {
				t.Fatalf("node %d sees no topic peer", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	awaitMesh()
	if err := topics[0].Publish(ctx, GossipMessage{Type: "hello", Body: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	from, m, err := topics[1].Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if from != nets[0].ID() || m.Type != "hello" || string(m.Body) != "hi" {
		t.Fatalf("got %q %q from %s, want hello hi from %s", m.Type, m.Body, from, nets[0].ID())
	}
	if got := Protocol("join-gossip", "state"); got != "/dtrain/join-gossip/state/1.0.0" {
		t.Fatalf("Protocol = %q", got)
	}
}
