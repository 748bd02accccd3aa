package matchmaking

import (
	"fmt"
	"math/rand"
	"reflect"
	"testing"
)

// TestPartitionGroupIsPartitions checks, for random ready sets and
// bounds, that the group a matchmaker builds for each of its peers is the
// one Partition puts it in, and nil for a peer left over, with clients
// among the peers too.
func TestPartitionGroupIsPartitions(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for trial := range 300 {
		n := 1 + rng.Intn(200)
		lo := 1 + rng.Intn(6)
		hi := lo + rng.Intn(20)
		epoch := uint64(rng.Intn(9))
		var ready []Ready
		for i := range n {
			role := Full
			if trial%3 == 0 && rng.Intn(3) > 0 {
				role = Client // many clients: reducers move between groups
			}
			ready = append(ready, Ready{Peer: fmt.Sprintf("p%d-%d", i, rng.Intn(1000)), Role: role, Weight: float64(i)})
		}
		rng.Shuffle(n, func(i, j int) { ready[i], ready[j] = ready[j], ready[i] })
		ready = dedupe(ready)
		groups, _ := Partition("run", epoch, ready, lo, hi)
		want := map[string][]Member{}
		for _, g := range groups {
			for _, m := range g {
				want[m.ID] = g
			}
		}
		for _, r := range ready {
			if got := partitionGroup("run", epoch, ready, lo, hi, r.Peer); !reflect.DeepEqual(got, want[r.Peer]) {
				t.Fatalf("trial %d (%d ready, %d..%d): group of %s is %v, Partition's %v", trial, len(ready), lo, hi, r.Peer, got, want[r.Peer])
			}
		}
		if got := partitionGroup("run", epoch, ready, lo, hi, "absent"); got != nil {
			t.Fatalf("trial %d: a group %v for a peer not ready", trial, got)
		}
	}
}

func dedupe(rs []Ready) []Ready {
	seen := map[string]bool{}
	var out []Ready
	for _, r := range rs {
		if !seen[r.Peer] {
			seen[r.Peer] = true
			out = append(out, r)
		}
	}
	return out
}
