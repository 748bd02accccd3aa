package matchmaking

import (
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func readySet(n int) []Ready {
	rs := make([]Ready, n)
	for i := range rs {
		rs[i] = Ready{Run: "run", Peer: fmt.Sprintf("p%04d", i), Weight: float64(i)}
	}
	return rs
}

func TestPartitionSizes(t *testing.T) {
	cases := []struct {
		n, min, max int
		sizes       []int // sorted
		leftover    int
	}{
		{16, 8, 16, []int{16}, 0},
		{17, 8, 16, []int{8, 9}, 0},
		{100, 8, 16, []int{14, 14, 14, 14, 14, 15, 15}, 0},
		{17, 10, 16, []int{16}, 1}, // 2 groups would be 8 and 9 < 10
		{35, 10, 16, []int{11, 12, 12}, 0},
		{5, 8, 16, nil, 5},
		{1, 2, 16, nil, 1},
		{1, 1, 16, []int{1}, 0},
		{0, 1, 16, nil, 0},
	}
	for _, c := range cases {
		groups, left := Partition("run", 0, readySet(c.n), c.min, c.max)
		var sizes []int
		for _, g := range groups {
			sizes = append(sizes, len(g))
		}
		slices.Sort(sizes)
		if !slices.Equal(sizes, c.sizes) || len(left) != c.leftover {
			t.Errorf("n %d, min %d, max %d: sizes %v and %d left over, want %v and %d",
				c.n, c.min, c.max, sizes, len(left), c.sizes, c.leftover)
		}
	}
}

// TestPartitionProperties checks, for random sizes, that every peer lands
// in exactly one group or the leftover, sizes stay within bounds, members
// are in id order, and neither input order nor duplicates change the result.
func TestPartitionProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for range 200 {
		n, lo := rng.Intn(300), 1+rng.Intn(16)
		hi := lo + rng.Intn(16)
		rs := readySet(n)
		groups, left := Partition("run", uint64(rng.Intn(5)), rs, lo, hi)
		seen := make(map[string]int)
		for _, g := range groups {
			if len(g) < lo || len(g) > hi {
				t.Fatalf("n %d: group of %d outside [%d, %d]", n, len(g), lo, hi)
			}
			for i, m := range g {
				seen[m.ID]++
				if i > 0 && g[i-1].ID >= m.ID {
					t.Fatalf("members out of id order: %v", g)
				}
			}
		}
		for _, m := range left {
			seen[m.ID]++
		}
		for _, r := range rs {
			if seen[r.Peer] != 1 {
				t.Fatalf("n %d: %s placed %d times", n, r.Peer, seen[r.Peer])
			}
		}
		if n >= lo && len(left) >= lo {
			t.Fatalf("n %d, min %d, max %d: %d left over could form a group", n, lo, hi, len(left))
		}
		shuffled := append(slices.Clone(rs), rs[:n/3]...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		g2, l2 := Partition("run", 0, shuffled, lo, hi)
		g1, l1 := Partition("run", 0, rs, lo, hi)
		if !reflect.DeepEqual(g1, g2) || !reflect.DeepEqual(l1, l2) {
			t.Fatalf("n %d: order or duplicates changed the partition", n)
		}
	}
}

func BenchmarkPartition1000(b *testing.B) {
	rs := readySet(1000)
	for b.Loop() {
		Partition("run", 7, rs, 8, 16)
	}
}

// Groups counts what Partition makes, for every small swarm.
func TestGroupsCountsPartition(t *testing.T) {
	for _, b := range [][2]int{{1, 1}, {2, 16}, {10, 16}, {3, 4}} {
		for n := 0; n <= 70; n++ {
			ready := make([]Ready, n)
			for i := range ready {
				ready[i] = Ready{Run: "r", Peer: fmt.Sprintf("p%d", i), Weight: 1}
			}
			gs, _ := Partition("r", 1, ready, b[0], b[1])
			if got := Groups(n, b[0], b[1]); got != len(gs) {
				t.Errorf("Groups(%d, %d, %d) = %d, Partition made %d", n, b[0], b[1], got, len(gs))
			}
		}
	}
}

// TestPartitionSpreadsReducers: with at least as many reducers (full or
// aux) as groups, every group gets one however the ranks fall, and every
// peer still lands in exactly one group or the leftover; with fewer, the
// groups that can have one do.
func TestPartitionSpreadsReducers(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for trial := range 300 {
		n, lo := 2+rng.Intn(60), 1+rng.Intn(4)
		hi := lo + rng.Intn(4)
		g := Groups(n, lo, hi)
		reducers := rng.Intn(g + 2)
		rs := readySet(n)
		for i := range rs {
			rs[i].Role = Client
		}
		for _, i := range rng.Perm(n)[:min(reducers, n)] {
			rs[i].Role = Full
			if rng.Intn(3) == 0 {
				rs[i].Role, rs[i].Weight = Aux, 0
			}
		}
		groups, left := Partition("run", uint64(trial), rs, lo, hi)
		seen := map[string]bool{}
		with := 0
		for _, gr := range groups {
			if slices.ContainsFunc(gr, func(m Member) bool { return m.Role.Reduces() }) {
				with++
			}
			if !slices.IsSortedFunc(gr, func(a, b Member) int { return strings.Compare(a.ID, b.ID) }) {
				t.Fatalf("trial %d: group %v not in id order", trial, gr)
			}
			for _, m := range gr {
				seen[m.ID] = true
			}
		}
		for _, m := range left {
			seen[m.ID] = true
		}
		if len(seen) != n || len(groups) != g {
			t.Fatalf("trial %d: %d peers placed in %d groups, want %d in %d", trial, len(seen), len(groups), n, g)
		}
		if want := min(g, reducers); with != want {
			t.Fatalf("trial %d: %d of %d groups have a reducer with %d reducers among %d peers (min %d, max %d), want %d",
				trial, with, g, reducers, n, lo, hi, want)
		}
	}
}
