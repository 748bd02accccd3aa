package matchmaking

import "hash/maphash"

// readyIndex finds a peer's announcement in Matchmaker.ready. It is an
// open-addressing table with linear probing, at most 3/4 full, whose
// 4-byte slots hold the position in their low bits (as many as the table
// has slots: positions are fewer) and the top bits of the id's hash above
// it: a peer collecting a thousand announcements reads one small slot
// array for each, where a Go map that large walks its header, directory,
// table and group first. The seed is random, so ids chosen to collide
// find no pattern to exploit. (progress.Tracker indexes its reports the
// same way.)
type readyIndex struct {
	seed  maphash.Seed
	slots []uint32 // hash bits above low | position+1; 0: empty
	low   uint32   // the mask of the position bits
}

// find returns the position of id's announcement in ready, which the
// index covers.
func (x *readyIndex) find(ready []Ready, id string) (int, bool) {
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
			if p := int(s&x.low) - 1; ready[p].Peer == id {
				return p, true
			}
		}
	}
}

// add indexes the last announcement of ready, from a peer the index does
// not hold.
func (x *readyIndex) add(ready []Ready) {
	if 4*len(ready) > 3*len(x.slots) {
		x.reset(ready, 2*len(ready))
		return
	}
	x.put(ready[len(ready)-1].Peer, len(ready)-1)
}

// reset indexes ready afresh with room for n announcements, in the
// slots it has when they are enough.
func (x *readyIndex) reset(ready []Ready, n int) {
	if x.slots == nil {
		x.seed = maphash.MakeSeed()
	}
	size := 16
	for 2*size < 3*max(n, len(ready)) {
		size *= 2
	}
	if len(x.slots) >= size {
		clear(x.slots) // room enough: fewer collisions still
	} else {
		x.slots = make([]uint32, size)
		x.low = uint32(size - 1) // a power of two, position+1 <= 3/4 size
	}
	for p, r := range ready {
		x.put(r.Peer, p)
	}
}

func (x *readyIndex) put(id string, p int) {
	h := maphash.String(x.seed, id)
	mask := uint64(len(x.slots) - 1)
	i := h & mask
	for x.slots[i] != 0 {
		i = (i + 1) & mask
	}
	x.slots[i] = uint32(h>>32)&^x.low | uint32(p+1)
}
