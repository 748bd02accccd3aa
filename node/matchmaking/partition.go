package matchmaking

import (
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Partition splits a ready set into groups, the same way on every peer that
// holds the same set. Peers are sorted by a rank that hashes (run, epoch,
// id) (rankSeed), so the groups change every epoch. With n peers, g = ⌈n/max⌉ groups of balanced sizes
// (⌊n/g⌋ or ⌈n/g⌉) are cut from the sorted list when every size stays ≥ min.
// Otherwise (say n = 17, min 10, max 16) only g = ⌊n/min⌋ groups of max
// peers are cut and the last peers in rank order are left over: they get no
// group this epoch (the ranks change next epoch, so no peer is always left
// over). Fewer than min peers make no group at all.
//
// A group should have a member that reduces (full or aux): when the cut
// leaves a group of clients only, spreadReducers moves a reducer into it
// from a group that has two or more, or from the leftover.
//
// Members within a group are ordered by id. The order of the ready set does
// not matter; of entries with one id the first given is kept. Invalid
// entries must be filtered by the caller. Partition never modifies ready.
func Partition(run string, epoch uint64, ready []Ready, min, max int) (groups [][]Member, leftover []Member) {
	order := ranked(run, epoch, ready)
	n := len(order)
	if min < 1 || max < min || n < min {
		for _, i := range order {
			leftover = append(leftover, ready[i].member())
		}
		return nil, leftover
	}
	at := 0
	for _, size := range groupSizes(n, min, max) {
		group := make([]Member, size)
		for k, i := range order[at : at+size] {
			group[k] = ready[i].member()
		}
		groups = append(groups, group)
		at += size
	}
	for _, i := range order[at:] {
		leftover = append(leftover, ready[i].member())
	}
	spreadReducers(groups, leftover)
	for _, g := range groups {
		slices.SortFunc(g, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	}
	return groups, leftover
}

// partitionGroup is the group of Partition(run, epoch, ready, min, max)
// that holds peer id, or nil: what a matchmaker needs of the partition.
// ready must hold distinct peers, as a Matchmaker's does. The group is the
// run of rank positions around id's, so partitionGroup counts id's
// position and keeps the nearest peers below and above it, without
// sorting the ready set.
func partitionGroup(run string, epoch uint64, ready []Ready, min, max int, id string) []Member {
	n := len(ready)
	self := slices.IndexFunc(ready, func(r Ready) bool { return r.Peer == id })
	if min < 1 || max < min || n < min || self < 0 {
		return nil
	}
	if slices.ContainsFunc(ready, func(r Ready) bool { return !r.Role.Reduces() }) {
		// Clients move reducers between groups (spreadReducers), which
		// the run of rank positions does not show: take the whole
		// partition.
		groups, _ := Partition(run, epoch, ready, min, max)
		for _, g := range groups {
			if slices.ContainsFunc(g, func(m Member) bool { return m.ID == id }) {
				return g
			}
		}
		return nil
	}
	seed := rankSeed(run, epoch)
	ranks := make([]uint64, n)
	for i, r := range ready {
		ranks[i] = rankFrom(seed, r.Peer)
	}
	// before reports whether ready[i] comes before ready[j] in the order
	// Partition sorts by (ids are distinct).
	before := func(i, j int) bool {
		if ranks[i] != ranks[j] {
			return ranks[i] < ranks[j]
		}
		return ready[i].Peer < ready[j].Peer
	}
	k := 0 // id's position
	for i := range ready {
		if before(i, self) {
			k++
		}
	}
	at := 0
	for _, size := range groupSizes(n, min, max) {
		if k < at+size {
			return members(ready, nearest(n, self, k-at, at+size-1-k, before))
		}
		at += size
	}
	return nil // left over
}

// nearest returns self and the below positions that come right before it
// and the above that come right after it in the order of before, out of
// positions 0..n-1.
func nearest(n, self, below, above int, before func(i, j int) bool) []int {
	lo := make([]int, 0, below+1) // in order, the latest kept
	hi := make([]int, 0, above+1) // in order, the earliest kept
	for i := range n {
		switch {
		case i == self:
		case before(i, self):
			if below > 0 && (len(lo) < below || before(lo[0], i)) {
				at, _ := slices.BinarySearchFunc(lo, i, order(before))
				lo = slices.Insert(lo, at, i)
				if len(lo) > below {
					lo = lo[1:]
				}
			}
		default:
			if above > 0 && (len(hi) < above || before(i, hi[len(hi)-1])) {
				at, _ := slices.BinarySearchFunc(hi, i, order(before))
				hi = slices.Insert(hi, at, i)
				hi = hi[:min(len(hi), above)]
			}
		}
	}
	return append(append(lo, self), hi...)
}

// order turns before into a comparison for binary search.
func order(before func(i, j int) bool) func(a, b int) int {
	return func(a, b int) int {
		switch {
		case before(a, b):
			return -1
		case before(b, a):
			return 1
		}
		return 0
	}
}

// ranked returns the positions in ready of its distinct peers, sorted by
// their rank; of entries with one id the first given is kept.
func ranked(run string, epoch uint64, ready []Ready) []int {
	type entry struct {
		rank uint64
		i    int // index in ready
	}
	seed := rankSeed(run, epoch)
	all := make([]entry, len(ready))
	for i, r := range ready {
		all[i] = entry{rankFrom(seed, r.Peer), i}
	}
	slices.SortFunc(all, func(a, b entry) int {
		if a.rank != b.rank {
			if a.rank < b.rank {
				return -1
			}
			return 1
		}
		if c := strings.Compare(ready[a.i].Peer, ready[b.i].Peer); c != 0 {
			return c
		}
		return a.i - b.i
	})
	// Equal ids have equal ranks, so duplicates are adjacent, the first
	// one given first.
	all = slices.CompactFunc(all, func(a, b entry) bool { return ready[a.i].Peer == ready[b.i].Peer })
	order := make([]int, len(all))
	for k, e := range all {
		order[k] = e.i
	}
	return order
}

// members returns the members of ready at positions, ordered by id.
func members(ready []Ready, positions []int) []Member {
	group := make([]Member, len(positions))
	for k, i := range positions {
		group[k] = ready[i].member()
	}
	slices.SortFunc(group, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return group
}

// spreadReducers gives every group of clients only a reducer, in group
// order: it swaps the group's first client for the last reducer of the
// leftover, or else of the first group with a reducer to spare. Groups and
// leftover are in rank order, so every peer swaps the same members; a group
// with no reducer to be had stays as it is (its clients reduce: RoundConfig).
func spreadReducers(groups [][]Member, leftover []Member) {
	reducers := func(ms []Member) int {
		n := 0
		for _, m := range ms {
			if m.Role.Reduces() {
				n++
			}
		}
		return n
	}
	for _, g := range groups {
		if reducers(g) > 0 {
			continue
		}
		from := leftover
		if reducers(leftover) == 0 {
			from = nil
			for _, d := range groups {
				if reducers(d) >= 2 {
					from = d
					break
				}
			}
		}
		for j := len(from) - 1; j >= 0; j-- {
			if from[j].Role.Reduces() {
				g[0], from[j] = from[j], g[0]
				break
			}
		}
	}
}

// groupSizes is how Partition cuts n distinct ready peers (n >= min >= 1).
func groupSizes(n, min, max int) []int {
	g := (n + max - 1) / max
	sizes := make([]int, g)
	if n/g >= min {
		for i := range sizes {
			sizes[i] = n / g
			if i < n%g {
				sizes[i]++
			}
		}
		return sizes
	}
	sizes = sizes[:n/min]
	for i := range sizes {
		sizes[i] = max
	}
	return sizes
}

// Groups is how many groups Partition makes of n distinct ready peers,
// without ranking them.
func Groups(n, min, max int) int {
	if min < 1 || max < min || n < min {
		return 0
	}
	return len(groupSizes(n, min, max))
}

const fnvPrime = 1099511628211

// A peer's rank, its position key for (run, epoch), is FNV-1a 64 of the
// three, finished with splitmix64's mixer so that nearby ids spread
// evenly: rankFrom(rankSeed(run, epoch), id). rankSeed is the FNV state
// after run, its terminating 0 byte and epoch, which every peer of a
// matchmaking shares.
func rankSeed(run string, epoch uint64) uint64 {
	x := uint64(14695981039346656037) // FNV-1a 64, inline: no allocation per peer
	for i := 0; i < len(run); i++ {
		x = (x ^ uint64(run[i])) * fnvPrime
	}
	x *= fnvPrime // the 0 byte that ends run
	for i := range 8 {
		x = (x ^ (epoch >> (8 * i) & 0xff)) * fnvPrime
	}
	return x
}

// rankFrom finishes a peer's rank from rankSeed's state.
func rankFrom(x uint64, id string) uint64 {
	for i := 0; i < len(id); i++ {
		x = (x ^ uint64(id[i])) * fnvPrime
	}
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// groupKey names a group by run, epoch and a digest of its members, so two
// different views of a group never share a key.
func groupKey(run string, epoch uint64, members []Member) string {
	h := fnv.New64a()
	var b [8]byte
	for _, m := range members {
		h.Write([]byte(m.ID))
		binary.LittleEndian.PutUint64(b[:], uint64(m.Role))
		h.Write(b[:])
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(m.Weight))
		h.Write(b[:])
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(m.Bandwidth))
		h.Write(b[:])
	}
	return run + "/" + strconv.FormatUint(epoch, 10) + "/" + hex.EncodeToString(h.Sum(nil))
}
