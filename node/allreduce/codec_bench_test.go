package allreduce

import (
	"math/rand/v2"
	"testing"
)

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(42, 43)) }

// benchVector is 1M pseudo-gradient values (4 MiB as float32).
func benchVector() []float32 {
	rng := newTestRand()
	v := make([]float32, 1<<20)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * 1e-3)
	}
	return v
}

// BenchmarkCodecEncode reports MB/s of float32 input encoded, for a 1M
// value part; the all-reduce needs far more than one link's 25–100 MB/s.
func BenchmarkCodecEncode(b *testing.B) {
	src := benchVector()
	for _, name := range allCodecs {
		c := mustCodec(b, name)
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, c.EncodedLen(len(src)))
			b.SetBytes(int64(4 * len(src)))
			for b.Loop() {
				buf = c.Encode(buf[:0], src)
			}
		})
	}
}

// BenchmarkCodecDecode reports MB/s of float32 output decoded (with the
// finiteness checks every received part goes through).
func BenchmarkCodecDecode(b *testing.B) {
	src := benchVector()
	for _, name := range allCodecs {
		c := mustCodec(b, name)
		b.Run(name, func(b *testing.B) {
			enc := c.Encode(nil, src)
			dst := make([]float32, len(src))
			b.SetBytes(int64(4 * len(src)))
			for b.Loop() {
				if err := c.Decode(dst, enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkErrorFeedbackEncode is int8 with error feedback: encode, decode
// back and update the residual.
func BenchmarkErrorFeedbackEncode(b *testing.B) {
	src := benchVector()
	c := mustCodec(b, "int8")
	ef := NewErrorFeedback(c, len(src))
	buf := make([]byte, 0, c.EncodedLen(len(src)))
	b.SetBytes(int64(4 * len(src)))
	for b.Loop() {
		var err error
		if buf, err = ef.Encode(buf[:0], 0, src); err != nil {
			b.Fatal(err)
		}
	}
}
