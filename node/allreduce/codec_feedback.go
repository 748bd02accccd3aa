package allreduce

import (
	"fmt"
)

// ErrorFeedback keeps, for one sender, what a lossy codec dropped from each
// element of the sender's vector and adds it back the next time the element
// is sent, so compression errors cancel over rounds instead of accumulating
// into a bias (error feedback: Seide et al. 2014, "1-bit SGD", §3;
// Karimireddy et al. 2019, "Error Feedback Fixes SignSGD", Alg. 2).
//
// With residual r (initially 0), sending x sends c = x + r and keeps
// r' = c - decode(encode(c)). Over any number of rounds the sum of what the
// receivers decoded differs from the sum of the x the sender meant to send
// by exactly the last residual, which is within one encoding's error
// (codec.Bound of the last compensated part), so there is no drift.
//
// The residual covers the n elements of the vector the sender encodes;
// parts are addressed by their offset into it. Encode may run concurrently
// for parts that do not overlap.
type ErrorFeedback struct {
	codec    Codec
	residual []float32
}

// NewErrorFeedback returns error feedback for a vector of n elements sent
// with codec c (useful for int8; with CodecNone the residual stays zero).
func NewErrorFeedback(c Codec, n int) *ErrorFeedback {
	return &ErrorFeedback{codec: c, residual: make([]float32, n)}
}

// Codec returns the codec the feedback compensates for.
func (e *ErrorFeedback) Codec() Codec { return e.codec }

// Residual returns the error carried into the next round, element by
// element. The slice is the feedback's own: read it, do not keep it.
func (e *ErrorFeedback) Residual() []float32 { return e.residual }

// Reset forgets the residual, as when the sender's vector is replaced
// (new epoch state loaded from peers).
func (e *ErrorFeedback) Reset() { clear(e.residual) }

// feedbackChunk is how many values are decoded back at a time. It is a
// multiple of Int8BlockSize, so chunk boundaries are block boundaries and a
// chunk's payload is exactly EncodedLen(chunk) bytes for every codec.
const feedbackChunk = Int8BlockSize

// Encode appends the encoding of x + residual[off:off+len(x)] to dst (the
// bytes to send for this part) and updates that stretch of the residual.
// x itself is not modified. Call it exactly once per part per round, and
// send exactly what it returns: the residual assumes the receivers decode
// these bytes.
//
// If x holds NaN or Inf, Encode returns an error, the part's residual is
// reset to 0 (so one bad round does not poison later ones) and dst is
// returned unchanged.
func (e *ErrorFeedback) Encode(dst []byte, off int, x []float32) ([]byte, error) {
	if off < 0 || off > len(e.residual) || len(x) > len(e.residual)-off {
		return dst, fmt.Errorf("error feedback: part [%d, %d) outside the sender's %d values",
			off, off+len(x), len(e.residual))
	}
	r := e.residual[off : off+len(x)]
	for i, v := range x {
		r[i] += v // r now holds the compensated values c
	}
	start := len(dst)
	out := e.codec.Encode(dst, r)
	var dec [feedbackChunk]float32
	enc := out[start:]
	for i := 0; i < len(r); i += feedbackChunk {
		c := r[i:min(i+feedbackChunk, len(r))]
		k := e.codec.EncodedLen(len(c))
		if err := e.codec.Decode(dec[:len(c)], enc[:k]); err != nil {
			clear(r)
			return dst, fmt.Errorf("error feedback: part at %d: %w", off, err)
		}
		enc = enc[k:]
		for j, d := range dec[:len(c)] {
			c[j] -= d
		}
	}
	return out, nil
}
