package progress

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
)

// TestPeerIndexFindsEveryPeer grows an index one peer at a time past
// several resizes, drops a random half as a sweep does, and checks that
// every held peer is found at its position and no other id is.
func TestPeerIndexFindsEveryPeer(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var x peerIndex
	var peers []held
	check := func(stage string) {
		t.Helper()
		for p, r := range peers {
			if got, ok := x.find(peers, r.peer); !ok || got != p {
				t.Fatalf("%s: find(%q) = %d, %v, want %d", stage, r.peer, got, ok, p)
			}
		}
		for i := range 1000 {
			id := fmt.Sprintf("absent-%d", i)
			if _, ok := x.find(peers, id); ok {
				t.Fatalf("%s: found %q, never added", stage, id)
			}
		}
	}
	if _, ok := x.find(peers, "a"); ok {
		t.Fatal("an empty index found a peer")
	}
	for i := range 3000 {
		peers = append(peers, held{peer: fmt.Sprintf("peer-%d-%d", i, rng.Int())})
		x.add(peers)
	}
	check("after adding")
	peers = slices.DeleteFunc(peers, func(held) bool { return rng.Intn(2) == 0 })
	x.reset(peers)
	check("after a sweep")
	if 3*len(peers) > 2*len(x.slots) || 3*len(peers) <= len(x.slots) {
		t.Errorf("%d slots for %d peers, want the power of two from 3/2 as many", len(x.slots), len(peers))
	}
}
