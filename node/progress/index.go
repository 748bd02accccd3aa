package progress

import "hash/maphash"

// peerIndex finds a peer's position in Tracker.peers. It is an
// open-addressing table with linear probing, at most 3/4 full, whose
// 4-byte slots hold the position in their low bits (as many as the table
// has slots: positions are fewer) and the top bits of the id's hash above
// it: finding a peer reads one small slot array and then the report
// itself, where a Go map of a thousand peers walks its header, directory,
// table and group first, and the indexes of a thousand simulated peers
// take 8 MB. The seed is random, so ids chosen to collide find no pattern
// to exploit.
type peerIndex struct {
	seed  maphash.Seed
	slots []uint32 // hash bits above low | position+1; 0: empty
	low   uint32   // the mask of the position bits
}

const minIndexSlots = 16

// find returns the position of id in peers, which the index covers.
func (x *peerIndex) find(peers []held, id string) (int, bool) {
	if len(x.slots) == 0 {
		return 0, false
	}
	h := maphash.String(x.seed, id)
	tag, mask := uint32(h>>32)&^x.low, uint64(len(x.slots)-1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		switch {
		case s == 0:
			return 0, false
		case s&^x.low == tag:
			if p := int(s&x.low) - 1; peers[p].peer == id {
				return p, true
			}
		}
	}
}

// add indexes the last report of peers, a peer the index does not hold.
func (x *peerIndex) add(peers []held) {
	if 4*len(peers) > 3*len(x.slots) {
		x.reset(peers)
		return
	}
	x.put(peers[len(peers)-1].peer, len(peers)-1)
}

// reset indexes peers afresh, at most 2/3 full: a small table, so that
// the indexes of a thousand simulated peers stay in cache, and probes
// still short.
func (x *peerIndex) reset(peers []held) {
	if x.slots == nil {
		x.seed = maphash.MakeSeed()
	}
	n := minIndexSlots
	for 2*n < 3*len(peers) {
		n *= 2
	}
	if n == len(x.slots) {
		clear(x.slots)
	} else {
		x.slots = make([]uint32, n)
		x.low = uint32(n - 1) // n a power of two, position+1 <= 3/4 n
	}
	for p := range peers {
		x.put(peers[p].peer, p)
	}
}

func (x *peerIndex) put(id string, p int) {
	h := maphash.String(x.seed, id)
	mask := uint64(len(x.slots) - 1)
	i := h & mask
	for x.slots[i] != 0 {
		i = (i + 1) & mask
	}
	x.slots[i] = uint32(h>>32)&^x.low | uint32(p+1)
}
