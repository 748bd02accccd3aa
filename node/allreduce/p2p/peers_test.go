package p2p

import (
	"crypto/rand"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dtrain-dev/dtrain/node/allreduce"
)

// TestPeers: a group's member ids decode to the libp2p ids in member
// order; an id that is not a libp2p id is an error naming it.
func TestPeers(t *testing.T) {
	var g allreduce.Group
	var want []peer.ID
	for range 3 {
		_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
		g.Members = append(g.Members, allreduce.Member{ID: id.String(), Weight: 1})
	}
	got, err := Peers(g)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("member %d: %s, want %s", i, got[i], want[i])
		}
	}
	g.Members[1].ID = "not-a-peer"
	if _, err := Peers(g); err == nil {
		t.Fatal("decoded a bad member id")
	}
}
