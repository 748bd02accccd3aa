package state

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dtrain-dev/dtrain/netx"
)

const testProto = protocol.ID("/dtrain/test-run/state/1.0.0")

func netxMessage(typ, ver uint8, body []byte) netx.Message {
	return netx.Message{Type: typ, Version: ver, Body: body}
}

// newNode starts a loopback QUIC node, closed at the end of the test.
func newNode(t testing.TB) *netx.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := netx.New(ctx, netx.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, DHTMode: netx.DHTServer})
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// connect dials every node in to from a.
func connect(t testing.TB, a *netx.Node, to ...*netx.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, b := range to {
		if err := a.Host().Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}); err != nil {
			t.Fatalf("connect: %v", err)
		}
	}
}

func randomBlob(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// swarm is a joiner and donors that all offer blob as epoch 1.
type swarm struct {
	joiner *netx.Node
	nodes  []*netx.Node
	donors []*Donor
	ids    []peer.ID
	offer  Offer
}

func newSwarm(t testing.TB, blob []byte, n int, opts DonorOptions) *swarm {
	t.Helper()
	s := &swarm{joiner: newNode(t)}
	opts.Run = "test-run"
	for range n {
		node := newNode(t)
		d := NewDonor(node.Host(), testProto, opts)
		t.Cleanup(func() { _ = d.Close() })
		s.offer = d.Offer(1, blob)
		s.nodes, s.donors, s.ids = append(s.nodes, node), append(s.donors, d), append(s.ids, node.ID())
	}
	connect(t, s.joiner, s.nodes...)
	return s
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
