package allreduce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"
)

// CodecID names a part codec on the wire: the byte a part's frame carries so
// that the receiver decodes the part with the codec its sender used.
type CodecID byte

// The codecs. The zero CodecID is CodecNone, so a zero value sends exact data.
const (
	CodecNone CodecID = iota // raw little-endian float32, exact
	CodecFP16                // IEEE 754 binary16, 2 bytes per value
	CodecBF16                // bfloat16 (float32's top half), 2 bytes per value
	CodecInt8                // blockwise int8 with a float32 scale per block
)

var codecNames = [...]string{
	CodecNone: "none",
	CodecFP16: "fp16",
	CodecBF16: "bf16",
	CodecInt8: "int8",
}

var codecs = [...]Codec{
	CodecNone: noneCodec{},
	CodecFP16: fp16Codec{},
	CodecBF16: bf16Codec{},
	CodecInt8: int8Codec{},
}

// String returns the codec's name as ParseCodec accepts it.
func (id CodecID) String() string {
	if int(id) < len(codecNames) {
		return codecNames[id]
	}
	return fmt.Sprintf("codec(%d)", byte(id))
}

// Codec compresses one part (a contiguous chunk) of the flat float32 vector
// the all-reduce averages. Each part is encoded on its own: a codec keeps no
// state between parts, and a payload carries no header (the part's frame
// carries the CodecID and the value count).
//
// A codec's error is bounded: for every finite src,
//
//	|src[i] - Decode(Encode(src))[i]| <= Bound(src)   for every i.
//
// Each codec's documentation states its per-element guarantee, which is
// tighter. The bound holds however src is cut into parts, so the all-reduce
// can bound the error of a whole span with one call.
type Codec interface {
	// ID returns the byte that names the codec on the wire.
	ID() CodecID
	// EncodedLen returns the exact payload size in bytes for n values.
	EncodedLen(n int) int
	// Encode appends the encoding of src to dst and returns the extended
	// slice, so one buffer can be reused across parts. Non-finite inputs
	// (which callers reject before encoding) encode to payloads that
	// Decode rejects, never to plausible finite values.
	Encode(dst []byte, src []float32) []byte
	// Decode decodes len(dst) values from src into dst. It returns an error
	// wrapping ErrBadEncoding when len(src) != EncodedLen(len(dst)), or when
	// the payload would decode to a non-finite value; dst's contents are
	// then unspecified.
	Decode(dst []float32, src []byte) error
	// Bound returns the largest absolute error the codec can introduce on
	// any element of src: 0 for CodecNone, +Inf if src holds NaN or Inf.
	Bound(src []float32) float64
}

// ErrUnknownCodec is returned for a codec name or CodecID this build does
// not know.
var ErrUnknownCodec = errors.New("allreduce: unknown codec")

// ErrBadEncoding is wrapped by every Decode error: the payload is not what
// the codec produces, so the part must be dropped and its sender treated as
// faulty.
var ErrBadEncoding = errors.New("allreduce: bad part encoding")

// ParseCodec returns the codec named "none", "fp16", "bf16" or "int8", the
// names used in configs and on the command line.
func ParseCodec(name string) (Codec, error) {
	for id, n := range codecNames {
		if n == name {
			return codecs[id], nil
		}
	}
	return nil, fmt.Errorf("%w %q (want none, fp16, bf16 or int8)", ErrUnknownCodec, name)
}

// CodecByID returns the codec a received part's frame names.
func CodecByID(id CodecID) (Codec, error) {
	if int(id) < len(codecs) {
		return codecs[id], nil
	}
	return nil, fmt.Errorf("%w %d", ErrUnknownCodec, byte(id))
}

const (
	f32SignBit = 0x80000000
	f32ExpMask = 0x7f800000 // also the bits of +Inf
)

// codecAppend grows dst by k bytes and returns the grown slice and its new
// tail, so encoders write the tail without per-element appends.
func codecAppend(dst []byte, k int) (all, tail []byte) {
	dst = slices.Grow(dst, k)
	all = dst[:len(dst)+k]
	return all, all[len(dst):]
}

// codecCheckLen is the length check every decoder starts with.
func codecCheckLen(c Codec, n int, src []byte) error {
	if want := c.EncodedLen(n); len(src) != want {
		return fmt.Errorf("decode %s part of %d values: %w: got %d bytes, want %d",
			c.ID(), n, ErrBadEncoding, len(src), want)
	}
	return nil
}

func codecNonFinite(id CodecID, i int) error {
	return fmt.Errorf("decode %s part: %w: element %d is not finite", id, ErrBadEncoding, i)
}

// codecMaxAbs returns max|src[i]| as float64, or +Inf if src holds NaN or
// Inf. It compares magnitude bits, which order finite floats like their
// values and place Inf and NaN above all of them.
func codecMaxAbs(src []float32) float64 {
	var m uint32
	for _, x := range src {
		if a := math.Float32bits(x) &^ f32SignBit; a > m {
			m = a
		}
	}
	if m >= f32ExpMask {
		return math.Inf(1)
	}
	return float64(math.Float32frombits(m))
}

// nativeLittleEndian is whether this machine stores a float32 as the wire
// does, little-endian: then a part's payload is its values' memory, and
// the exact codec copies it instead of converting value by value.
var nativeLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// float32Bytes is v's memory as bytes (4 per value, native byte order).
func float32Bytes(v []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

// firstNonFinite returns the index of v's first NaN or Inf, or -1. A value
// is not finite when its exponent bits are all set, which is when adding
// one to its exponent carries into its sign bit. Blocks are tested two
// values per 64-bit word (an 8-byte aligned view: a carry out of the low
// value stops at bit 31), without a branch per value, and searched one
// value at a time only when a carry is set.
func firstNonFinite(v []float32) int {
	const (
		block = 512
		exp2  = uint64(f32ExpMask)<<32 | f32ExpMask
		one2  = uint64(1)<<55 | 1<<23
		sign2 = uint64(f32SignBit)<<32 | f32SignBit
	)
	for lo := 0; lo < len(v); lo += block {
		blk := v[lo:min(lo+block, len(v))]
		skip := int(uintptr(unsafe.Pointer(&blk[0])) % 8 / 4) // 1 when blk starts between words
		carry := uint64(math.Float32bits(blk[0])&f32ExpMask+1<<23) * uint64(skip)
		if n := (len(blk) - skip) / 2; n > 0 {
			words := unsafe.Slice((*uint64)(unsafe.Pointer(&blk[skip])), n)
			for _, w := range words {
				carry |= w&exp2 + one2
			}
		}
		if (len(blk)-skip)%2 == 1 {
			carry |= uint64(math.Float32bits(blk[len(blk)-1])&f32ExpMask + 1<<23)
		}
		if carry&sign2 == 0 {
			continue
		}
		for i, x := range blk {
			if math.Float32bits(x)&f32ExpMask == f32ExpMask {
				return lo + i
			}
		}
	}
	return -1
}

// encodeShared returns c's encoding of src, which may alias src: with
// CodecNone on a little-endian machine it is src's own memory, so a
// contribution goes out without being copied first.
func encodeShared(c Codec, src []float32) []byte {
	if c.ID() == CodecNone && nativeLittleEndian {
		return float32Bytes(src)
	}
	return c.Encode(nil, src)
}

// noneCodec sends float32 values as they are.
type noneCodec struct{}

func (noneCodec) ID() CodecID { return CodecNone }

func (noneCodec) EncodedLen(n int) int { return 4 * n }

func (noneCodec) Encode(dst []byte, src []float32) []byte {
	dst, out := codecAppend(dst, 4*len(src))
	if nativeLittleEndian {
		copy(out, float32Bytes(src))
		return dst
	}
	for i, x := range src {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return dst
}

func (c noneCodec) Decode(dst []float32, src []byte) error {
	if err := codecCheckLen(c, len(dst), src); err != nil {
		return err
	}
	if nativeLittleEndian {
		copy(float32Bytes(dst), src)
		if i := firstNonFinite(dst); i >= 0 {
			return codecNonFinite(CodecNone, i)
		}
		return nil
	}
	for i := range dst {
		u := binary.LittleEndian.Uint32(src[4*i:])
		if u&f32ExpMask == f32ExpMask {
			return codecNonFinite(CodecNone, i)
		}
		dst[i] = math.Float32frombits(u)
	}
	return nil
}

func (noneCodec) Bound(src []float32) float64 {
	if math.IsInf(codecMaxAbs(src), 1) {
		return math.Inf(1)
	}
	return 0
}
