package netx

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// plainHost is a libp2p host with no DHT and no run: it can never be
// found by a provider lookup, so whatever makes it a member is identify.
func plainHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings(quicLoopback))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not within %v: %s", d, what)
		}
	}
}

// A peer that connects is a member once it speaks the run's member
// protocol (identify tells), and not before: a connection alone is no
// claim to membership. It stops being one when it stops speaking it.
func TestMemberByIdentify(t *testing.T) {
	a := startNode(t)
	r, err := a.JoinRun(context.Background(), "ident")
	if err != nil {
		t.Fatal(err)
	}
	d := plainHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	// Identify runs on connect; give it time to be wrongly taken as a claim.
	waitFor(t, "identify of the plain host", 5*time.Second, func() bool {
		ps, _ := a.Host().Peerstore().GetProtocols(d.ID())
		return len(ps) > 0
	})
	time.Sleep(200 * time.Millisecond)
	if slices.Contains(r.Peers(), d.ID()) {
		t.Fatal("a connected peer that does not speak the member protocol counts as a member")
	}
	d.SetStreamHandler(Protocol("ident", memberProtocol), func(s network.Stream) { _ = s.Reset() })
	waitFor(t, "the peer that now speaks the member protocol to be a member", 10*time.Second, func() bool {
		return slices.Contains(r.Peers(), d.ID())
	})
	// Leaving the run (the handler removed, identify pushes it) ends its
	// membership though the connection stays.
	d.RemoveStreamHandler(Protocol("ident", memberProtocol))
	waitFor(t, "the peer that left the run to be no member", 10*time.Second, func() bool {
		return !slices.Contains(r.Peers(), d.ID())
	})
	if a.Host().Network().Connectedness(d.ID()) != network.Connected {
		t.Error("the connection closed: the test proves nothing about leaving")
	}
}

// exchange returns a connected member's members, and no more of them, nor
// more addresses each, than its bounds, however many the member sends; an
// answer over the frame limit or not JSON yields nothing.
func TestExchangeBounds(t *testing.T) {
	a := startNode(t)
	r, err := a.JoinRun(context.Background(), "px")
	if err != nil {
		t.Fatal(err)
	}
	d := plainHost(t)
	ids := []peer.ID{d.ID()} // connected: exchange must leave it out
	for range 299 {
		_, pub, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPublicKey(pub)
		ids = append(ids, id)
	}
	fake := func(n, addrs int) []peer.AddrInfo {
		out := make([]peer.AddrInfo, n)
		for i := range out {
			out[i].ID = ids[i]
			for j := range addrs {
				out[i].Addrs = append(out[i].Addrs, ma.StringCast(fmt.Sprintf("/ip4/10.0.%d.%d/udp/4002/quic-v1", i%250, j%250)))
			}
		}
		return out
	}
	var answer []byte
	d.SetStreamHandler(Protocol("px", memberProtocol), func(s network.Stream) {
		fs := NewFramedStream(s, 1<<20, 5*time.Second)
		defer fs.Close()
		_ = fs.WriteMessage(context.Background(), Message{Type: typeMembers, Version: 1, Body: answer})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the plain host to be a member", 10*time.Second, func() bool { return slices.Contains(r.Peers(), d.ID()) })

	answer, _ = json.Marshal(fake(300, 12))
	if len(answer) <= exchangeFrame {
		answer, _ = json.Marshal(fake(150, 3))
	}
	if got := r.exchange(); got != nil {
		t.Errorf("an answer of %d bytes (over the %d-byte frame) gave %d members", len(answer), exchangeFrame, len(got))
	}
	answer, _ = json.Marshal(fake(200, 12))
	for len(answer) > exchangeFrame {
		answer, _ = json.Marshal(fake(200, 2))
	}
	got := r.exchange()
	if len(got) != exchangeMax {
		t.Fatalf("exchange returned %d members of 199 new, want %d", len(got), exchangeMax)
	}
	for _, ai := range got {
		if ai.ID == d.ID() || len(ai.Addrs) > exchangeAddrs {
			t.Fatalf("returned %v (a connected peer, or over %d addresses)", ai, exchangeAddrs)
		}
	}
	answer = []byte("not json")
	if got := r.exchange(); got != nil {
		t.Errorf("an answer that is not JSON gave %d members", len(got))
	}
}

// A member answers with the other members it is connected to, with their
// addresses, and not with the asker.
func TestServeMembers(t *testing.T) {
	a, b, c := startNode(t), startNode(t), startNode(t)
	ra, err := a.JoinRun(context.Background(), "serve")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{b, c} {
		if _, err := n.JoinRun(context.Background(), "serve"); err != nil {
			t.Fatal(err)
		}
		connectNodes(t, n, a)
	}
	waitFor(t, "b and c to be a's members", 10*time.Second, func() bool { return len(ra.Peers()) == 2 })
	got := ra.sample(b.ID())
	if len(got) != 1 || got[0].ID != c.ID() || len(got[0].Addrs) == 0 {
		t.Fatalf("a's sample for b: %v, want c with its addresses", got)
	}
}

func connectNodes(t *testing.T, from, to *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := from.Host().Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: to.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
}
