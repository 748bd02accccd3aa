package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A Snapshot is a miner's state at the start of an epoch, encoded as one
// blob: the same bytes on every miner that holds the same state, so its
// SHA-256 is both the progress report's StateHash (miners compare it) and
// the Offer that joiners download. Layout, little-endian:
//
//	magic "DTMS" | version u32 | mode u32 (0 diloco, 1 gradients) |
//	epoch u64 | step u64 | numel u64 |
//	params f32[numel] |
//	diloco:    outer momentum f32[numel]
//	gradients: AdamW exp_avg f32[numel] | exp_avg_sq f32[numel] | adam step u64
//
// What differs between miners that agree (tokens trained, diloco's inner
// AdamW moments, which stay local) is left out. The size is a function of
// (mode, numel), so a joiner knows it before downloading.
type Snapshot struct {
	Mode   Mode
	Epoch  uint64 // the epoch this state starts
	Step   int    // optimizer steps taken (diloco inner steps or gradient steps)
	Params []float32
	// Momentum is diloco's outer Nesterov buffer, one value per parameter.
	Momentum []float32
	// ExpAvg, ExpAvgSq and AdamStep are the AdamW state that gradients
	// mode shares. The other mode's fields are not encoded, and decode as
	// nil.
	ExpAvg, ExpAvgSq []float32
	AdamStep         int64
}

// Mode is the sync mode a snapshot belongs to: what it holds besides the
// parameters.
type Mode uint32

// The modes, numbered as in the blob.
const (
	DiLoCo    Mode = 0 // the outer momentum
	Gradients Mode = 1 // the AdamW moments and step
)

// String is the mode's name in a miner's config.
func (m Mode) String() string {
	switch m {
	case DiLoCo:
		return "diloco"
	case Gradients:
		return "gradients"
	}
	return fmt.Sprintf("mode(%d)", uint32(m))
}

const (
	snapshotMagic   = "DTMS"
	snapshotVersion = 1
	// SnapshotHeaderLen is the length of the blob's header, before the
	// parameters.
	SnapshotHeaderLen = 4 + 4 + 4 + 8 + 8 + 8
)

// SnapshotSize is the blob's size for numel parameters in mode.
func SnapshotSize(mode Mode, numel int64) int64 {
	if mode == DiLoCo {
		return SnapshotHeaderLen + 8*numel
	}
	return SnapshotHeaderLen + 12*numel + 8
}

// Marshal encodes s. Its mode's slices must each hold one value per
// parameter.
func (s Snapshot) Marshal() ([]byte, error) {
	n := len(s.Params)
	switch {
	case s.Mode != DiLoCo && s.Mode != Gradients:
		return nil, fmt.Errorf("state: encode %v", s.Mode)
	case s.Mode == DiLoCo && len(s.Momentum) != n:
		return nil, fmt.Errorf("state: encode %d momentum values for %d parameters", len(s.Momentum), n)
	case s.Mode == Gradients && (len(s.ExpAvg) != n || len(s.ExpAvgSq) != n):
		return nil, fmt.Errorf("state: encode AdamW moments of %d and %d values for %d parameters", len(s.ExpAvg), len(s.ExpAvgSq), n)
	case s.Step < 0:
		return nil, fmt.Errorf("state: encode step %d", s.Step)
	}
	b := make([]byte, SnapshotHeaderLen, SnapshotSize(s.Mode, int64(n)))
	copy(b, snapshotMagic)
	binary.LittleEndian.PutUint32(b[4:], snapshotVersion)
	binary.LittleEndian.PutUint32(b[8:], uint32(s.Mode))
	binary.LittleEndian.PutUint64(b[12:], s.Epoch)
	binary.LittleEndian.PutUint64(b[20:], uint64(s.Step))
	binary.LittleEndian.PutUint64(b[28:], uint64(n))
	b = appendFloats(b, s.Params)
	if s.Mode == DiLoCo {
		return appendFloats(b, s.Momentum), nil
	}
	b = appendFloats(appendFloats(b, s.ExpAvg), s.ExpAvgSq)
	return binary.LittleEndian.AppendUint64(b, uint64(s.AdamStep)), nil
}

// UnmarshalSnapshot decodes a blob that must hold a state of mode for
// numel parameters (the caller's model). It refuses, with an error and
// without a partial result, a blob of another size, magic, version, mode
// or model, a step that does not fit an int32, and any NaN or Inf.
func UnmarshalSnapshot(b []byte, mode Mode, numel int64) (Snapshot, error) {
	if numel < 0 || numel > math.MaxInt64/16 || int64(len(b)) != SnapshotSize(mode, numel) || string(b[:4]) != snapshotMagic {
		return Snapshot{}, fmt.Errorf("state: %d bytes, want a %s state of %d for %d parameters", len(b), mode, SnapshotSize(mode, numel), numel)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != snapshotVersion {
		return Snapshot{}, fmt.Errorf("state: version %d, want %d", v, snapshotVersion)
	}
	if got := binary.LittleEndian.Uint32(b[8:]); Mode(got) != mode || binary.LittleEndian.Uint64(b[28:]) != uint64(numel) {
		return Snapshot{}, errors.New("state: another mode or model size")
	}
	s := Snapshot{Mode: mode, Epoch: binary.LittleEndian.Uint64(b[12:])}
	step := binary.LittleEndian.Uint64(b[20:])
	if step > math.MaxInt32 {
		return Snapshot{}, fmt.Errorf("state: step %d", step)
	}
	s.Step = int(step)
	var err error
	rest := b[SnapshotHeaderLen:]
	if s.Params, rest, err = readFloats(rest, numel); err != nil {
		return Snapshot{}, fmt.Errorf("state parameters: %w", err)
	}
	if mode == DiLoCo {
		if s.Momentum, _, err = readFloats(rest, numel); err != nil {
			return Snapshot{}, fmt.Errorf("state: %w", err)
		}
		return s, nil
	}
	if s.ExpAvg, rest, err = readFloats(rest, numel); err != nil {
		return Snapshot{}, fmt.Errorf("state: %w", err)
	}
	if s.ExpAvgSq, rest, err = readFloats(rest, numel); err != nil {
		return Snapshot{}, fmt.Errorf("state: %w", err)
	}
	if s.AdamStep = int64(binary.LittleEndian.Uint64(rest)); s.AdamStep < 0 {
		return Snapshot{}, fmt.Errorf("state: AdamW step %d", uint64(s.AdamStep))
	}
	return s, nil
}

func appendFloats(b []byte, xs []float32) []byte {
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// readFloats reads n finite float32 values off the front of b.
func readFloats(b []byte, n int64) ([]float32, []byte, error) {
	xs := make([]float32, n)
	for i := range xs {
		xs[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if xs[i]-xs[i] != 0 {
			return nil, nil, fmt.Errorf("value %d is %v", i, xs[i])
		}
	}
	return xs, b[4*n:], nil
}
