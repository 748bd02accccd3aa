package allreduce

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Int8BlockSize is the number of values that share one scale in the int8
// codec. Blocks start at the beginning of each part; the last block of a
// part may be shorter. 256 keeps the scale overhead at 1.6% (a 3.94×
// reduction against float32) while an outlier inflates the error of only
// 255 neighbours.
const Int8BlockSize = 256

// int8Codec sends each block of Int8BlockSize values as a little-endian
// float32 scale s = max|block|/127 followed by one signed byte per value,
// q = round(x/s) in [-127, 127], decoded as q·s. An all-zero block has s = 0.
//
// Guarantee, for finite x in a block whose largest magnitude is m:
//
//	|x - x̂| <= m/254 · (1 + 2^-16) + 2^-140
//
// which is the quantization step's half, s/2 = m/254, widened by the
// float32 rounding of s and of q·s (the 2^-140 term only matters for blocks
// that lie entirely in float32's subnormal range). Bound(src) is this
// bound with m = max|src|: the largest block maximum is max|src| however
// src is cut into parts.
//
// The decoder rejects a negative, NaN or infinite scale, a scale so large
// that 127·s overflows, and the byte -128, which the encoder never emits.
type int8Codec struct{}

func (int8Codec) ID() CodecID { return CodecInt8 }

func (int8Codec) EncodedLen(n int) int {
	return n + 4*((n+Int8BlockSize-1)/Int8BlockSize)
}

func (c int8Codec) Encode(dst []byte, src []float32) []byte {
	dst, out := codecAppend(dst, c.EncodedLen(len(src)))
	for len(src) > 0 {
		n := min(len(src), Int8BlockSize)
		int8EncodeBlock(out[:4+n], src[:n])
		out, src = out[4+n:], src[n:]
	}
	return dst
}

// int8EncodeBlock writes one block's scale and quantized values to out,
// which is exactly 4+len(x) bytes.
func int8EncodeBlock(out []byte, x []float32) {
	q := out[4:]
	var m uint32
	for _, v := range x {
		if a := math.Float32bits(v) &^ f32SignBit; a > m {
			m = a
		}
	}
	if m >= f32ExpMask {
		// NaN or Inf in the block: send a non-finite scale, which every
		// decoder rejects, rather than a plausible finite block.
		binary.LittleEndian.PutUint32(out, m)
		clear(q)
		return
	}
	scale := math.Float32frombits(m) / 127
	if scale == 0 {
		// All zeros, or m/127 underflows: everything decodes as 0, off by
		// at most m < 2^-142.
		binary.LittleEndian.PutUint32(out, 0)
		clear(q)
		return
	}
	if math.IsInf(float64(scale*127), 0) {
		// m near MaxFloat32: keep 127·s finite so the decoder accepts it.
		scale = math.Nextafter32(scale, 0)
	}
	binary.LittleEndian.PutUint32(out, math.Float32bits(scale))
	inv := 1 / float64(scale)
	q = q[:len(x)]
	for i, v := range x {
		r := math.RoundToEven(float64(v) * inv)
		// |r| <= 127 except when a subnormal scale was rounded down.
		if r > 127 {
			r = 127
		} else if r < -127 {
			r = -127
		}
		q[i] = byte(int8(r))
	}
}

func (c int8Codec) Decode(dst []float32, src []byte) error {
	if err := codecCheckLen(c, len(dst), src); err != nil {
		return err
	}
	for base := 0; base < len(dst); base += Int8BlockSize {
		n := min(len(dst)-base, Int8BlockSize)
		scale := math.Float32frombits(binary.LittleEndian.Uint32(src))
		// !(s >= 0) also catches NaN; 127·s overflowing catches +Inf.
		if !(scale >= 0) || scale*127 > math.MaxFloat32 {
			return fmt.Errorf("decode int8 part: %w: block at element %d has scale %v",
				ErrBadEncoding, base, scale)
		}
		q, d := src[4:4+n], dst[base:base+n]
		for j, b := range q {
			if b == 0x80 {
				return fmt.Errorf("decode int8 part: %w: element %d is -128",
					ErrBadEncoding, base+j)
			}
			d[j] = float32(int8(b)) * scale
		}
		src = src[4+n:]
	}
	return nil
}

func (int8Codec) Bound(src []float32) float64 {
	return int8ElemBound(codecMaxAbs(src))
}

// int8ElemBound is the int8 guarantee for a block whose largest magnitude
// is m.
func int8ElemBound(m float64) float64 {
	return m/254*(1+0x1p-16) + 0x1p-140
}
