package data

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
)

// Order is the data order of a run: for each epoch, a pseudorandom
// permutation of a dataset's windows, keyed by (run id, seed, epoch), that
// anyone can recompute from those three values alone.
//
// The permutation is a four-round Feistel network over the smallest
// even-bit power of two ≥ windows, with cycle walking to stay inside
// [0, windows) (Black & Rogaway, "Ciphers with arbitrary finite domains",
// 2002). Each round's function is splitmix64 of the round key xor the half
// block; the round keys are the first 32 bytes of SHA-256("dtrain/order/v1",
// run, seed, epoch). Changing this function changes every run's data: it is
// versioned by that string.
type Order struct {
	run     string
	seed    uint64
	windows int64
	half    uint // bits per Feistel half
}

// NewOrder returns the order of a run over a dataset of windows windows.
func NewOrder(run string, seed uint64, windows int64) (Order, error) {
	if windows < 1 {
		return Order{}, fmt.Errorf("data order: %d windows, need at least 1", windows)
	}
	b := uint(bits.Len64(uint64(windows - 1)))
	return Order{run: run, seed: seed, windows: windows, half: max(1, (b+1)/2)}, nil
}

// Windows is the size of the permuted domain.
func (o Order) Windows() int64 { return o.windows }

// Window returns the window at position pos of epoch's permutation; pos is
// taken modulo the dataset size.
func (o Order) Window(epoch uint64, pos int64) int64 {
	pos %= o.windows
	if pos < 0 {
		pos += o.windows
	}
	return o.at(o.roundKeys(epoch), pos)
}

// at is the window at position pos, in [0, windows), of the permutation
// with the given round keys.
func (o Order) at(keys [4]uint64, pos int64) int64 {
	x := uint64(pos)
	for {
		x = o.feistel(keys, x)
		if x < uint64(o.windows) {
			return int64(x)
		}
	}
}

func (o Order) roundKeys(epoch uint64) [4]uint64 {
	h := sha256.New()
	h.Write([]byte("dtrain/order/v1\x00"))
	h.Write([]byte(o.run))
	var b [17]byte
	binary.LittleEndian.PutUint64(b[1:], o.seed)
	h.Write(b[:9])
	binary.LittleEndian.PutUint64(b[:8], epoch)
	h.Write(b[:8])
	sum := h.Sum(nil)
	var k [4]uint64
	for i := range k {
		k[i] = binary.LittleEndian.Uint64(sum[8*i:])
	}
	return k
}

func (o Order) feistel(keys [4]uint64, x uint64) uint64 {
	mask := uint64(1)<<o.half - 1
	l, r := x>>o.half, x&mask
	for _, k := range keys {
		l, r = r, l^(SplitMix64(k^r)&mask)
	}
	return l<<o.half | r
}

// SplitMix64 is Steele, Lea & Flood's finalizer ("Fast splittable
// pseudorandom number generators", OOPSLA 2014): a cheap
// deterministic 64-bit mixer, for keys that must be the same on every peer.
func SplitMix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Assignment says which windows each peer of an epoch trains on. The peers
// of the epoch, sorted by id, are numbered 0..P-1; peer r's k-th sample of
// the epoch is position r + k·P of the epoch's Order, so within an epoch
// peers' data are disjoint however fast each one goes, until a peer has
// taken Capacity samples (then the epoch's data is used up and the swarm
// should move on). A peer's step s covers its samples s·PerStep ..
// s·PerStep+PerStep-1. A validator that knows (run, seed, epoch, the
// epoch's peer ids) recomputes exactly the batch any peer was given.
type Assignment struct {
	Order   Order
	Epoch   uint64
	Peers   []string // the epoch's peers; order does not matter
	PerStep int      // samples (windows) per step
}

// rank is peer's index among the sorted peer ids.
func (a Assignment) rank(peer string) (int, error) {
	sorted := slices.Clone(a.Peers)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	r, ok := slices.BinarySearch(sorted, peer)
	if !ok {
		return 0, fmt.Errorf("data assignment: peer %q is not among the epoch's %d peers", peer, len(sorted))
	}
	return r, nil
}

// Capacity is how many samples each peer can take in one epoch without
// reusing another peer's data: ceil((windows - rank) / P) for the peer of
// that rank, the smallest of which this returns.
func (a Assignment) Capacity() int64 {
	p := int64(len(slices.Compact(slices.Sorted(slices.Values(a.Peers)))))
	if p == 0 {
		return 0
	}
	return a.Order.Windows() / p
}

// Windows returns the window indices of peer's step in the epoch.
func (a Assignment) Windows(peer string, step int64) ([]int64, error) {
	if a.PerStep < 1 {
		return nil, fmt.Errorf("data assignment: %d samples per step", a.PerStep)
	}
	if step < 0 {
		return nil, fmt.Errorf("data assignment: negative step %d", step)
	}
	r, err := a.rank(peer)
	if err != nil {
		return nil, err
	}
	p := int64(len(slices.Compact(slices.Sorted(slices.Values(a.Peers)))))
	out := make([]int64, a.PerStep)
	for j := range out {
		k := step*int64(a.PerStep) + int64(j)
		out[j] = a.Order.Window(a.Epoch, int64(r)+k*p)
	}
	return out, nil
}
