package matchmaking

import "hash/maphash"

// readyIndex finds a peer's announcement in Matchmaker.ready. It is an
// open-addressing table with linear probing, at most 3/4 full, whose
// slots hold the position beside the top bits of the id's hash: a peer
// collecting a thousand announcements reads one slot array for each,
// where a Go map that large walks its header, directory, table and group
// first. The seed is random, so ids chosen to collide find no pattern to
// exploit. (progress.Tracker indexes its reports the same way.)
type readyIndex struct {
	seed  maphash.Seed
	slots []uint64 // hash>>32<<32 | position+1; 0: empty
}

// find returns the position of id's announcement in ready, which the
// index covers.
func (x *readyIndex) find(ready []Ready, id string) (int, bool) {
	if len(x.slots) == 0 {
		return 0, false
	}
	h := maphash.String(x.seed, id)
	tag, mask := h>>32, uint64(len(x.slots)-1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		switch {
		case s == 0:
			return 0, false
		case s>>32 == tag:
			if p := int(uint32(s)) - 1; ready[p].Peer == id {
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
		x.slots = make([]uint64, size)
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
	x.slots[i] = h>>32<<32 | uint64(p+1)
}
