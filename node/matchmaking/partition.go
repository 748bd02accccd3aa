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
// holds the same set. Peers are sorted by rank(run, epoch, id), so the groups
// change every epoch. With n peers, g = ⌈n/max⌉ groups of balanced sizes
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
	type ranked struct {
		rank uint64
		i    int // index in ready
	}
	all := make([]ranked, len(ready))
	for i, r := range ready {
		all[i] = ranked{rank(run, epoch, r.Peer), i}
	}
	slices.SortFunc(all, func(a, b ranked) int {
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
	all = slices.CompactFunc(all, func(a, b ranked) bool { return ready[a.i].Peer == ready[b.i].Peer })
	n := len(all)
	if min < 1 || max < min || n < min {
		for _, r := range all {
			leftover = append(leftover, ready[r.i].member())
		}
		return nil, leftover
	}
	sizes := groupSizes(n, min, max)
	at := 0
	for _, size := range sizes {
		group := make([]Member, size)
		for i := range group {
			group[i] = ready[all[at+i].i].member()
		}
		groups = append(groups, group)
		at += size
	}
	for _, r := range all[at:] {
		leftover = append(leftover, ready[r.i].member())
	}
	spreadReducers(groups, leftover)
	for _, g := range groups {
		slices.SortFunc(g, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	}
	return groups, leftover
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

// rank is a peer's position key for (run, epoch): FNV-1a 64 of the three,
// finished with splitmix64's mixer so that nearby ids spread evenly.
func rank(run string, epoch uint64, id string) uint64 {
	const prime = 1099511628211
	x := uint64(14695981039346656037) // FNV-1a 64, inline: no allocation per peer
	for i := 0; i < len(run); i++ {
		x = (x ^ uint64(run[i])) * prime
	}
	x *= prime // the 0 byte that ends run
	for i := range 8 {
		x = (x ^ (epoch >> (8 * i) & 0xff)) * prime
	}
	for i := 0; i < len(id); i++ {
		x = (x ^ uint64(id[i])) * prime
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
		if !m.Commit.IsZero() {
			h.Write(m.Commit[:]) // only when set: uncommitted groups keep their keys
		}
	}
	return run + "/" + strconv.FormatUint(epoch, 10) + "/" + hex.EncodeToString(h.Sum(nil))
}
