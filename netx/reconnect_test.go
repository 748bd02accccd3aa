package netx

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestRestartedPeerSupersedesOldConnection: a peer that comes back with
// the same identity from a new port replaces its old connection, which is
// closed instead of lingering until the idle timeout.
func TestRestartedPeerSupersedesOldConnection(t *testing.T) {
	old := staleAfter
	staleAfter = 300 * time.Millisecond
	t.Cleanup(func() { staleAfter = old })
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
	deadline := time.Now().Add(5 * time.Second)
	for {
		conns := a.Host().Network().ConnsToPeer(second.ID())
		if len(conns) == 1 && conns[0].RemoteMultiaddr().Equal(second.Host().Network().ConnsToPeer(a.ID())[0].LocalMultiaddr()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a holds %d connections to the restarted peer, want only the new one", len(conns))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
