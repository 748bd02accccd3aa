package data

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
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
