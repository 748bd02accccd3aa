package netx

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestRestartedPeerSupersedesOldConnection: a peer that comes back with
// the same identity while its old connection is still open (its old
// process died without closing it) is disconnected entirely and dialled
// back, so that the peer's new process holds the only connection and
// every protocol, gossipsub's writer included, starts afresh with it.
func TestRestartedPeerSupersedesOldConnection(t *testing.T) {
	oldStale, oldSettle := staleAfter, settleAfter
	staleAfter, settleAfter = 300*time.Millisecond, 100*time.Millisecond
	t.Cleanup(func() { staleAfter, settleAfter = oldStale, oldSettle })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := startNode(t)
	key := filepath.Join(t.TempDir(), "id.key")
	connect := func() *Node {
		n, err := New(ctx, Config{ListenAddrs: []string{quicLoopback}, DHTMode: DHTClient, KeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		if err := n.Host().Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	first := connect()
	time.Sleep(2 * staleAfter)
	second := connect() // the "restarted" process: same key, new port
	if first.ID() != second.ID() {
		t.Fatal("the two processes should share one identity")
	}
	first.Close() // the old process is gone
	deadline := time.Now().Add(10 * time.Second)
	for {
		conns := a.Host().Network().ConnsToPeer(second.ID())
		theirs := second.Host().Network().ConnsToPeer(a.ID())
		// The dial back: a's one connection is one it opened, to second.
		if len(conns) == 1 && len(theirs) == 1 && conns[0].Stat().Direction == network.DirOutbound &&
			conns[0].RemoteMultiaddr().Equal(theirs[0].LocalMultiaddr()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a holds %d connections to the restarted peer, want one it dialled back", len(conns))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
