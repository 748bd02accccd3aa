package state

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// randomSnapshot is a state of n parameters in mode with random values.
func randomSnapshot(rng *rand.Rand, mode Mode, n int) Snapshot {
	floats := func() []float32 {
		xs := make([]float32, n)
		for i := range xs {
			xs[i] = float32(rng.NormFloat64())
		}
		return xs
	}
	s := Snapshot{Mode: mode, Epoch: rng.Uint64(), Step: rng.IntN(math.MaxInt32), Params: floats()}
	if mode == DiLoCo {
		s.Momentum = floats()
	} else {
		s.ExpAvg, s.ExpAvgSq, s.AdamStep = floats(), floats(), rng.Int64N(1<<40)
	}
	return s
}

// TestSnapshotRoundTrip: for random sizes in both modes, a snapshot
// decodes to exactly what was encoded, its blob is SnapshotSize long, and
// the same state always encodes to the same bytes (the blob's hash names
// the state).
func TestSnapshotRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, mode := range []Mode{DiLoCo, Gradients} {
		for _, n := range []int{0, 1, 7, 1000} {
			s := randomSnapshot(rng, mode, n)
			b, err := s.Marshal()
			if err != nil {
				t.Fatalf("%v, %d: %v", mode, n, err)
			}
			if int64(len(b)) != SnapshotSize(mode, int64(n)) {
				t.Fatalf("%v, %d: %d bytes, SnapshotSize says %d", mode, n, len(b), SnapshotSize(mode, int64(n)))
			}
			got, err := UnmarshalSnapshot(b, mode, int64(n))
			if err != nil {
				t.Fatalf("%v, %d: %v", mode, n, err)
			}
			if !reflect.DeepEqual(got, s) {
				t.Fatalf("%v, %d: decoded %+v, want %+v", mode, n, got, s)
			}
			again, _ := got.Marshal()
			if !bytes.Equal(again, b) {
				t.Fatalf("%v, %d: the decoded state encodes to other bytes", mode, n)
			}
		}
	}
}

// TestSnapshotLayout pins the header against hand-written bytes, so a
// change of layout, which splits miners of two versions, is deliberate.
func TestSnapshotLayout(t *testing.T) {
	s := Snapshot{Mode: DiLoCo, Epoch: 3, Step: 30, Params: []float32{1.5}, Momentum: []float32{-2}}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("DTMS\x01\x00\x00\x00\x00\x00\x00\x00" +
		"\x03\x00\x00\x00\x00\x00\x00\x00" + "\x1e\x00\x00\x00\x00\x00\x00\x00" + "\x01\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x00\xc0\x3f" + "\x00\x00\x00\xc0")
	if !bytes.Equal(b, want) {
		t.Fatalf("blob\n  %x\nwant\n  %x", b, want)
	}
}

// TestSnapshotRejects: blobs of the wrong size, magic, version, mode or
// model, with a huge step or a NaN or Inf anywhere are refused; snapshots
// whose slices do not match their parameters do not encode.
func TestSnapshotRejects(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	good, _ := randomSnapshot(rng, Gradients, 5).Marshal()
	dilocoBlob, _ := randomSnapshot(rng, DiLoCo, 5).Marshal()
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	le := binary.LittleEndian
	for _, tc := range []struct {
		name  string
		blob  []byte
		mode  Mode
		numel int64
	}{
		{"truncated", good[:len(good)-1], Gradients, 5},
		{"empty", nil, Gradients, 0},
		{"another model", good, Gradients, 4},
		{"another mode", good, DiLoCo, 5},
		{"diloco blob of the gradients size", append(dilocoBlob, make([]byte, len(good)-len(dilocoBlob))...), Gradients, 5},
		{"magic", edit(func(b []byte) { b[0] = 'X' }), Gradients, 5},
		{"version", edit(func(b []byte) { le.PutUint32(b[4:], 2) }), Gradients, 5},
		{"numel field", edit(func(b []byte) { le.PutUint64(b[28:], 6) }), Gradients, 5},
		{"step", edit(func(b []byte) { le.PutUint64(b[20:], math.MaxInt32+1) }), Gradients, 5},
		{"NaN parameter", edit(func(b []byte) { le.PutUint32(b[SnapshotHeaderLen+8:], 0x7fc00000) }), Gradients, 5},
		{"Inf exp_avg_sq", edit(func(b []byte) { le.PutUint32(b[SnapshotHeaderLen+4*12:], 0x7f800000) }), Gradients, 5},
		{"negative AdamW step", edit(func(b []byte) { le.PutUint64(b[len(b)-8:], 1<<63) }), Gradients, 5},
		{"negative numel", good, Gradients, -1},
		{"numel that overflows the size", good[:SnapshotHeaderLen], DiLoCo, 1 << 61},
	} {
		if _, err := UnmarshalSnapshot(tc.blob, tc.mode, tc.numel); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	for _, s := range []Snapshot{
		{Mode: DiLoCo, Params: make([]float32, 2), Momentum: make([]float32, 1)},
		{Mode: Gradients, Params: make([]float32, 2), ExpAvg: make([]float32, 2)},
		{Mode: 2, Params: make([]float32, 2)},
		{Mode: DiLoCo, Step: -1},
	} {
		if _, err := s.Marshal(); err == nil {
			t.Errorf("encoded %+v", s)
		}
	}
}

// FuzzUnmarshalSnapshot: any bytes, for any mode and a small model, decode
// to an error or to a snapshot that encodes back to exactly those bytes;
// nothing panics.
func FuzzUnmarshalSnapshot(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, mode := range []Mode{DiLoCo, Gradients} {
		b, _ := randomSnapshot(rng, mode, 3).Marshal()
		f.Add(b, uint32(mode), uint8(3))
		f.Add(b[:len(b)-2], uint32(mode), uint8(3))
	}
	f.Add([]byte("DTMS"), uint32(0), uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, mode uint32, numel uint8) {
		s, err := UnmarshalSnapshot(b, Mode(mode), int64(numel))
		if err != nil {
			return
		}
		again, err := s.Marshal()
		if err != nil {
			t.Fatalf("an accepted snapshot does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs\n  in %x\n out %x", b, again)
		}
	})
}
