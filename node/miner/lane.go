package miner

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"

	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/torch"
)

// epochLane is what the miner trains on in an epoch: its micro-batches
// k = 0, 1, … (in diloco, inner step s holds micro-batches s·accum …
// s·accum+accum−1) with their dropout seeds, and a digest of those it has
// trained on.
type epochLane struct {
	windows func(k int64) ([]int64, error) // micro-batch k's windows
	seed    func(k int64) uint64           // micro-batch k's dropout seed
	ds      *data.Dataset
	micro   int
	seqLen  int
	trained laneDigest
}

// epochLane returns the miner's lane of its current epoch (node/data
// Lane): a function of (run, seed, dataset, epoch, this miner's id) alone,
// so anyone who hears its progress reports can recompute it.
func (m *Miner) epochLane() *epochLane {
	lane, micro := m.order.Lane(m.epoch, m.cheat.lanePeer(m.epoch, m.self)), m.cfg.Loop.MicroBatch
	return &epochLane{
		windows: func(k int64) ([]int64, error) { return lane.MicroBatch(micro, k) },
		seed:    lane.DropoutSeed,
		ds:      m.opts.Train, micro: micro, seqLen: m.cfg.Data.SeqLen, trained: newLaneDigest(),
	}
}

// batch returns micro-batch k and its windows.
func (l *epochLane) batch(k int) (torch.Batch, []int64, error) {
	windows, err := l.windows(int64(k))
	if err != nil {
		return torch.Batch{}, nil, err
	}
	t := l.seqLen
	b := torch.Batch{B: l.micro, T: t, X: make([]int32, l.micro*t), Y: make([]int32, l.micro*t)}
	for i, w := range windows {
		if err := l.ds.Window(w, b.X[i*t:(i+1)*t], b.Y[i*t:(i+1)*t]); err != nil {
			return torch.Batch{}, nil, err
		}
	}
	return b, windows, nil
}

// laneDigest is the SHA-256 of micro-batches, in training order: for each,
// its window indices and its dropout seed, little-endian 64-bit integers.
// A miner's EpochEvent.DataHash is the digest of the micro-batches it
// trained on in the epoch, which anyone can compare with the digest of
// the lane's first samples/micro_batch micro-batches.
type laneDigest struct{ h hash.Hash }

func newLaneDigest() laneDigest { return laneDigest{sha256.New()} }

func (d laneDigest) add(windows []int64, dropoutSeed uint64) {
	b := make([]byte, 0, 8*len(windows)+8)
	for _, w := range windows {
		b = binary.LittleEndian.AppendUint64(b, uint64(w))
	}
	d.h.Write(binary.LittleEndian.AppendUint64(b, dropoutSeed))
}

// sum is the digest as 16 hex digits, like the parameter hashes.
func (d laneDigest) sum() string { return fmt.Sprintf("%x", d.h.Sum(nil)[:8]) }
