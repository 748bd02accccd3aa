package netx

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// An allowlisted node (Config.Admit) takes connections from its members
// and its bootstrap peers only: a stranger can neither connect to it nor
// be dialled by it (issue 17: "an allowlisted run joined by a stranger").
func TestAdmissionRefusesStrangers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	boot := startNode(t)
	member, stranger := startNode(t), startNode(t)
	gated, err := New(ctx, Config{ListenAddrs: []string{quicLoopback}, DHTMode: DHTServer,
		Bootstrap: []string{boot.Host().Addrs()[0].String() + "/p2p/" + boot.ID().String()},
		Admit:     func(p peer.ID) bool { return p == member.ID() }})
	if err != nil {
		t.Fatal(err)
	}
	defer gated.Close()
	info := peer.AddrInfo{ID: gated.ID(), Addrs: gated.Host().Addrs()}
	if err := member.Host().Connect(ctx, info); err != nil {
		t.Fatalf("a member could not connect: %v", err)
	}
	if err := stranger.Host().Connect(ctx, info); err == nil {
		// The handshake may complete on the stranger's side before the
		// gated node closes it: what counts is that no connection stays.
		time.Sleep(200 * time.Millisecond)
	}
	if gated.Host().Network().Connectedness(stranger.ID()) == network.Connected {
		t.Fatal("the gated node holds a connection to a stranger")
	}
	if err := gated.Host().Connect(ctx, peer.AddrInfo{ID: stranger.ID(), Addrs: stranger.Host().Addrs()}); err == nil {
		t.Fatal("the gated node dialled a stranger")
	}
	if gated.Host().Network().Connectedness(boot.ID()) != network.Connected {
		t.Fatal("the gated node is not connected to its bootstrap peer")
	}
}
