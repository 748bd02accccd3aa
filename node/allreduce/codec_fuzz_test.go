package allreduce

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// fuzzDecode drives one codec's decoder with arbitrary payloads and value
// counts. A decoder must never panic; when it accepts a payload the values
// must be finite, the length must have been exact, and the values must be
// a fixed point of the codec: encoding them again decodes within the
// codec's bound (for the 16-bit codecs and none, to the same bytes).
func fuzzDecode(f *testing.F, name string) {
	c := mustCodec(f, name)
	for _, src := range [][]float32{
		{}, {0}, {1, -2.5, 3e-7, 65504, -1e6},
		randomVector(newTestRand(), 300),
	} {
		f.Add(uint16(len(src)), c.Encode(nil, src))
	}
	f.Add(uint16(3), []byte{1, 2, 3, 4, 5, 6, 7})
	f.Add(uint16(1), []byte{0, 0, 0x80, 0xff, 0x80})
	f.Fuzz(func(t *testing.T, n uint16, payload []byte) {
		dst := make([]float32, int(n)%5000)
		err := c.Decode(dst, payload)
		if err != nil {
			if !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("error %v does not wrap ErrBadEncoding", err)
			}
			return
		}
		if len(payload) != c.EncodedLen(len(dst)) {
			t.Fatalf("accepted %d bytes for %d values, want %d", len(payload), len(dst), c.EncodedLen(len(dst)))
		}
		for i, x := range dst {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("accepted payload decodes element %d to %g", i, x)
			}
		}
		enc := c.Encode(nil, dst)
		// Exact: fp16, bf16 and none decode to values they encode back to bit for bit.
		if c.ID() != CodecInt8 && !bytes.Equal(enc, payload) {
			t.Fatalf("re-encoding decoded values gives different bytes")
		}
		again := make([]float32, len(dst))
		if err := c.Decode(again, enc); err != nil {
			t.Fatalf("decoding re-encoded values: %v", err)
		}
		assertWithin(t, "re-encoded", c, dst, again)
	})
}

func FuzzDecodeNone(f *testing.F) { fuzzDecode(f, "none") }
func FuzzDecodeFP16(f *testing.F) { fuzzDecode(f, "fp16") }
func FuzzDecodeBF16(f *testing.F) { fuzzDecode(f, "bf16") }
func FuzzDecodeInt8(f *testing.F) { fuzzDecode(f, "int8") }
