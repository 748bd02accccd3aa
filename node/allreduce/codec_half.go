package allreduce

import (
	"encoding/binary"
	"math"
)

// fp16Codec sends IEEE 754 binary16 values, little-endian, rounded to
// nearest with ties to even (subnormal halves included).
//
// Guarantee, for finite x with a = |x|:
//
//	|x - x̂| <= max(a·2^-11, 2^-25, a - 65504)
//
// that is a relative error of at most 2^-11 for 2^-14 <= a <= 65504 (the
// normal range), an absolute error of at most 2^-25 (half the subnormal
// spacing) below it, and 0 for ±0. Values whose magnitude would round past
// the largest half (a >= 65520) are clamped to ±65504 rather than becoming
// ±Inf, which no receiver may average; a gradient that large is already
// broken, and clamping keeps the round alive. Bound(src) is this bound at
// max|src|; the bound is nondecreasing in a, so that is its maximum.
type fp16Codec struct{}

const (
	fp16Max        = 65504      // largest finite half
	fp16ClampBits  = 0x477ff000 // float32 bits of 65520: halfway to 2^16, rounds to Inf
	fp16MinNormBit = 0x38800000 // float32 bits of 2^-14, the smallest normal half
)

func (fp16Codec) ID() CodecID { return CodecFP16 }

func (fp16Codec) EncodedLen(n int) int { return 2 * n }

func (fp16Codec) Encode(dst []byte, src []float32) []byte {
	dst, out := codecAppend(dst, 2*len(src))
	for i, x := range src {
		binary.LittleEndian.PutUint16(out[2*i:], f32ToF16(math.Float32bits(x)))
	}
	return dst
}

func (c fp16Codec) Decode(dst []float32, src []byte) error {
	if err := codecCheckLen(c, len(dst), src); err != nil {
		return err
	}
	for i := range dst {
		h := binary.LittleEndian.Uint16(src[2*i:])
		if h&0x7c00 == 0x7c00 {
			return codecNonFinite(CodecFP16, i)
		}
		dst[i] = f16ToF32(h)
	}
	return nil
}

func (fp16Codec) Bound(src []float32) float64 {
	a := codecMaxAbs(src)
	return max(a*0x1p-11, 0x1p-25, a-fp16Max)
}

// f32ToF16 rounds float32 bits to the nearest half, ties to even, clamping
// finite overflow to ±65504 and keeping Inf and NaN non-finite. It is
// F. Giesen's float_to_half_fast3_rtne ("Float->half variants", 2016).
func f32ToF16(f uint32) uint16 {
	sign := uint16(f>>16) & 0x8000
	a := f &^ f32SignBit
	switch {
	case a >= fp16ClampBits:
		switch {
		case a > f32ExpMask:
			return sign | 0x7e00 // NaN
		case a == f32ExpMask:
			return sign | 0x7c00 // Inf
		}
		return sign | 0x7bff // ±65504
	case a < fp16MinNormBit:
		// Adding 0.5 (whose ulp is 2^-24, the half subnormal spacing)
		// lets the FPU round the value to a multiple of 2^-24; the
		// mantissa bits are then the half's.
		const half = 0x3f000000
		return sign | uint16(math.Float32bits(math.Float32frombits(a)+0.5)-half)
	}
	// Rebias the exponent (127 -> 15), then round the 13 dropped mantissa
	// bits to nearest even; a carry correctly bumps the exponent.
	a += 0xc8000fff + (a>>13)&1
	return sign | uint16(a>>13)
}

// f16ToF32 widens a finite half exactly (F. Giesen's half_to_float).
func f16ToF32(h uint16) float32 {
	o := uint32(h&0x7fff) << 13
	if h&0x7c00 == 0 {
		// Subnormal or zero: place the mantissa under 2^-14's exponent
		// and subtract 2^-14, which renormalizes exactly.
		const magic = 113 << 23
		o = math.Float32bits(math.Float32frombits(o+magic) - math.Float32frombits(magic))
	} else {
		o += (127 - 15) << 23
	}
	return math.Float32frombits(o | uint32(h&0x8000)<<16)
}

// bf16Codec sends bfloat16 values (the top 16 bits of a float32),
// little-endian, rounded to nearest with ties to even.
//
// Guarantee, for finite x with a = |x|:
//
//	|x - x̂| <= max(a·2^-8, 2^-134, a - bf16Max)
//
// that is a relative error of at most 2^-8 over float32's whole normal
// range, at most 2^-134 (half bfloat16's subnormal spacing) for float32
// subnormals, and 0 for ±0. Finite values that would round to ±Inf (a >=
// 0x1.ffp127) are clamped to ±bf16Max ≈ ±3.39e38. Bound(src) is this bound
// at max|src|.
type bf16Codec struct{}

const (
	bf16Max       = 0x1.fep127 // largest finite bfloat16 (bits 0x7f7f)
	bf16ClampBits = 0x7f7f8000 // float32 bits halfway past bf16Max: rounds to Inf
)

func (bf16Codec) ID() CodecID { return CodecBF16 }

func (bf16Codec) EncodedLen(n int) int { return 2 * n }

func (bf16Codec) Encode(dst []byte, src []float32) []byte {
	dst, out := codecAppend(dst, 2*len(src))
	for i, x := range src {
		binary.LittleEndian.PutUint16(out[2*i:], f32ToBF16(math.Float32bits(x)))
	}
	return dst
}

func (c bf16Codec) Decode(dst []float32, src []byte) error {
	if err := codecCheckLen(c, len(dst), src); err != nil {
		return err
	}
	for i := range dst {
		h := binary.LittleEndian.Uint16(src[2*i:])
		if h&0x7f80 == 0x7f80 {
			return codecNonFinite(CodecBF16, i)
		}
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
	return nil
}

func (bf16Codec) Bound(src []float32) float64 {
	a := codecMaxAbs(src)
	return max(a*0x1p-8, 0x1p-134, a-bf16Max)
}

// f32ToBF16 rounds float32 bits to the nearest bfloat16, ties to even,
// clamping finite overflow to ±bf16Max and keeping Inf and NaN non-finite.
func f32ToBF16(f uint32) uint16 {
	if a := f &^ f32SignBit; a >= bf16ClampBits {
		switch {
		case a > f32ExpMask:
			return uint16(f>>16) | 0x0040 // NaN stays NaN
		case a < f32ExpMask:
			return uint16(f>>16)&0x8000 | 0x7f7f
		}
	}
	return uint16((f + 0x7fff + (f>>16)&1) >> 16)
}
