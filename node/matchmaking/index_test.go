package matchmaking

import (
	"fmt"
	"math/rand"
	"testing"
)

// TestReadyIndexFindsEveryPeer grows an index one announcement at a time
// from a size hint and past it, and checks that every announcement is
// found at its position and no other id is.
func TestReadyIndexFindsEveryPeer(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, hint := range []int{0, 10, 1000} {
		var x readyIndex
		x.reset(nil, hint)
		var ready []Ready
		for i := range 3000 {
			ready = append(ready, Ready{Peer: fmt.Sprintf("peer-%d-%d", i, rng.Int())})
			x.add(ready)
			if 4*len(ready) > 3*len(x.slots) {
				t.Fatalf("hint %d: %d slots for %d announcements, want at most 3/4 full", hint, len(x.slots), len(ready))
			}
		}
		for p, r := range ready {
			if got, ok := x.find(ready, r.Peer); !ok || got != p {
				t.Fatalf("hint %d: find(%q) = %d, %v, want %d", hint, r.Peer, got, ok, p)
			}
		}
		for i := range 1000 {
			if _, ok := x.find(ready, fmt.Sprintf("absent-%d", i)); ok {
				t.Fatalf("hint %d: found an id never added", hint)
			}
		}
	}
}
