package progress

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Report is one peer's training progress, gossiped on the run's topic.
type Report struct {
	Peer          string   // the sender's peer id (raw bytes, at most MaxPeerLen)
	Epoch         uint64   // the epoch the peer is training toward
	Samples       uint64   // samples the peer has accumulated in Epoch
	SamplesPerSec float64  // the peer's recent training rate; 0 when idle
	HasLoss       bool     // whether Loss is known
	Loss          float32  // last local training loss; 0 unless HasLoss
	StateHash     [32]byte // hash of the parameters Epoch started from; zero = unknown
	Offers        bool     // the peer serves its state to joiners
	Time          int64    // the sender's Unix time in milliseconds
}

// GossipType is the gossip message type of reports on a run's topic.
const GossipType = "progress"

// Wire format constants.
const (
	// Version is the first byte of every encoded Report.
	Version = 1
	// MaxPeerLen bounds the peer id; libp2p ids are under 64 bytes.
	MaxPeerLen = 128
	// MaxTime is the largest Time that converts to a time.Duration.
	MaxTime = math.MaxInt64 / 1_000_000
	// MaxSize is the longest encoding of a Report.
	MaxSize = fixedSize + MaxPeerLen

	// version, flags, peer length; epoch, samples, rate, loss, hash, time.
	fixedSize = 3 + 8 + 8 + 8 + 4 + 32 + 8
)

// Flag bits of the second byte; the other bits must be zero.
const (
	flagOffers  = 1 << 0
	flagHasLoss = 1 << 1
	flagsKnown  = flagOffers | flagHasLoss
)

// Sentinel errors that callers branch on.
var (
	// ErrBadReport marks a malformed report or encoding.
	ErrBadReport = errors.New("progress: bad report")
	// ErrVersion marks an encoding of an unknown version.
	ErrVersion = errors.New("progress: unknown report version")
)

// Validate reports whether r can be gossiped and observed.
func (r Report) Validate() error {
	switch {
	case r.Peer == "":
		return fmt.Errorf("empty peer id: %w", ErrBadReport)
	case len(r.Peer) > MaxPeerLen:
		return fmt.Errorf("peer id of %d bytes, max %d: %w", len(r.Peer), MaxPeerLen, ErrBadReport)
	case !(r.SamplesPerSec >= 0) || math.IsInf(r.SamplesPerSec, 1):
		return fmt.Errorf("peer %q: samples/s %v, want finite and >= 0: %w", r.Peer, r.SamplesPerSec, ErrBadReport)
	case r.HasLoss && (math.IsNaN(float64(r.Loss)) || math.IsInf(float64(r.Loss), 0)):
		return fmt.Errorf("peer %q: loss %v, want finite: %w", r.Peer, r.Loss, ErrBadReport)
	case !r.HasLoss && math.Float32bits(r.Loss) != 0:
		return fmt.Errorf("peer %q: loss %v without HasLoss: %w", r.Peer, r.Loss, ErrBadReport)
	case r.Time < 0 || r.Time > MaxTime:
		return fmt.Errorf("peer %q: time %d ms, want 0..%d: %w", r.Peer, r.Time, int64(MaxTime), ErrBadReport)
	}
	return nil
}

// Marshal encodes r: version, flags, peer id length, peer id, then epoch,
// samples, samples/s (float64 bits), loss (float32 bits), state hash and
// time, little-endian. It fails on a report that Validate rejects.
func (r Report) Marshal() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("marshal progress: %w", err)
	}
	b := make([]byte, 0, fixedSize+len(r.Peer))
	var flags byte
	if r.Offers {
		flags |= flagOffers
	}
	if r.HasLoss {
		flags |= flagHasLoss
	}
	b = append(b, Version, flags, byte(len(r.Peer)))
	b = append(b, r.Peer...)
	b = binary.LittleEndian.AppendUint64(b, r.Epoch)
	b = binary.LittleEndian.AppendUint64(b, r.Samples)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.SamplesPerSec))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(r.Loss))
	b = append(b, r.StateHash[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Time))
	return b, nil
}

// Unmarshal decodes b into r. It is strict: the length must be exact, no
// unknown flag may be set, and the decoded report must pass Validate, so
// every accepted encoding is the one Marshal produces. On error r is left
// unchanged.
func (r *Report) Unmarshal(b []byte) error {
	if len(b) < 3 {
		return fmt.Errorf("unmarshal progress: %d bytes, want at least %d: %w", len(b), fixedSize+1, ErrBadReport)
	}
	if b[0] != Version {
		return fmt.Errorf("unmarshal progress: version %d, want %d: %w", b[0], Version, ErrVersion)
	}
	flags, n := b[1], int(b[2])
	if flags&^flagsKnown != 0 {
		return fmt.Errorf("unmarshal progress: unknown flags %#x: %w", flags&^flagsKnown, ErrBadReport)
	}
	if want := fixedSize + n; len(b) != want {
		return fmt.Errorf("unmarshal progress: %d bytes for a %d-byte peer id, want %d: %w", len(b), n, want, ErrBadReport)
	}
	le := binary.LittleEndian
	p := b[3+n:]
	var out Report
	out.Peer = string(b[3 : 3+n])
	out.Offers = flags&flagOffers != 0
	out.HasLoss = flags&flagHasLoss != 0
	out.Epoch = le.Uint64(p[0:])
	out.Samples = le.Uint64(p[8:])
	out.SamplesPerSec = math.Float64frombits(le.Uint64(p[16:]))
	out.Loss = math.Float32frombits(le.Uint32(p[24:]))
	copy(out.StateHash[:], p[28:60])
	out.Time = int64(le.Uint64(p[60:]))
	if err := out.Validate(); err != nil {
		return fmt.Errorf("unmarshal progress: %w", err)
	}
	*r = out
	return nil
}

// UnmarshalReport parses a report that peer from gossiped and checks that
// from wrote it: gossip is signed by its author, and a report naming
// another peer is refused, so no peer reports for another.
func UnmarshalReport(from string, b []byte) (Report, error) {
	var r Report
	if err := r.Unmarshal(b); err != nil {
		return Report{}, err
	}
	if r.Peer != from {
		return Report{}, fmt.Errorf("progress report from %s names %q: %w", from, r.Peer, ErrBadReport)
	}
	return r, nil
}
