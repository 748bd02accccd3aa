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
// Members within a group are ordered by id. The order of the ready set and
// duplicate ids (the first is kept) do not matter; invalid entries must be
// filtered by the caller. Partition never modifies ready.
func Partition(run string, epoch uint64, ready []Ready, min, max int) (groups [][]Member, leftover []Member) {
	type ranked struct {
		rank uint64
		m    Member
	}
	seen := make(map[string]bool, len(ready))
	all := make([]ranked, 0, len(ready))
	for _, r := range ready {
		if seen[r.Peer] {
			continue
		}
		seen[r.Peer] = true
		all = append(all, ranked{rank(run, epoch, r.Peer), r.member()})
	}
	slices.SortFunc(all, func(a, b ranked) int {
		if a.rank != b.rank {
			if a.rank < b.rank {
				return -1
			}
			return 1
		}
		return strings.Compare(a.m.ID, b.m.ID)
	})
	n := len(all)
	if min < 1 || max < min || n < min {
		for _, r := range all {
			leftover = append(leftover, r.m)
		}
		return nil, leftover
	}
	g := (n + max - 1) / max
	sizes := make([]int, g)
	if n/g >= min {
		for i := range sizes {
			sizes[i] = n / g
			if i < n%g {
				sizes[i]++
			}
		}
	} else {
		sizes = sizes[:n/min]
		for i := range sizes {
			sizes[i] = max
		}
	}
	at := 0
	for _, size := range sizes {
		group := make([]Member, size)
		for i := range group {
			group[i] = all[at+i].m
		}
		slices.SortFunc(group, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
		groups = append(groups, group)
		at += size
	}
	for _, r := range all[at:] {
		leftover = append(leftover, r.m)
	}
	return groups, leftover
}

// rank is a peer's position key for (run, epoch): FNV-1a 64 of the three,
// finished with splitmix64's mixer so that nearby ids spread evenly.
func rank(run string, epoch uint64, id string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	h.Write([]byte(run))
	h.Write([]byte{0})
	binary.LittleEndian.PutUint64(b[:], epoch)
	h.Write(b[:])
	h.Write([]byte(id))
	x := h.Sum64()
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
