package allreduce

import (
	"math"
	"math/rand/v2"
	"testing"
)

// halfRef is the value of a finite half computed from its definition.
func halfRef(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>10)&0x1f, float64(h&0x3ff)
	if e == 0 {
		return sign * math.Ldexp(m, -24)
	}
	return sign * math.Ldexp(1024+m, e-25)
}

// TestF16AllHalves checks every finite half: it widens to its exact value
// and narrows back to itself.
func TestF16AllHalves(t *testing.T) {
	for h := range 1 << 16 {
		h := uint16(h)
		if h&0x7c00 == 0x7c00 {
			continue
		}
		f := f16ToF32(h)
		// Exact: every half and halfRef's Ldexp are exactly representable.
		if float64(f) != halfRef(h) || math.Signbit(float64(f)) != (h&0x8000 != 0) {
			t.Fatalf("f16ToF32(%#04x) = %g, want %g", h, f, halfRef(h))
		}
		if back := f32ToF16(math.Float32bits(f)); back != h {
			t.Fatalf("f32ToF16(f16ToF32(%#04x)) = %#04x", h, back)
		}
	}
}

// assertNearestEven checks that code is the nearest representable value
// to x among code and its two neighbours (by magnitude), with ties going
// to the even code.
func assertNearestEven(t *testing.T, name string, x float32, code uint16, value func(uint16) float64, maxCode uint16) {
	t.Helper()
	mag := code & 0x7fff
	err := math.Abs(float64(x) - value(code))
	for _, nb := range []uint16{mag - 1, mag + 1} {
		if nb > maxCode || (mag == 0 && nb == 0xffff) {
			continue
		}
		nbErr := math.Abs(float64(x) - value(code&0x8000|nb))
		// Exact: both differences of 24-bit significands fit float64's 53.
		if nbErr < err || (nbErr == err && mag&1 == 1) {
			t.Fatalf("%s(%g): code %#04x (error %g) but %#04x has error %g", name, x, code, err, code&0x8000|nb, nbErr)
		}
	}
}

// TestF16RoundsToNearestEven compares f32ToF16 with the definition of
// round-to-nearest-even on random float32 bit patterns in the range that
// does not clamp, dense near the subnormal boundary and at ties.
func TestF16RoundsToNearestEven(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 1 << 20 {
		u := rng.Uint32()
		if i%4 == 0 {
			u &^= 0xfff // more ties and near-ties
		}
		x := math.Float32frombits(u)
		if a := math.Abs(float64(x)); math.IsNaN(a) || a >= 65520 {
			continue
		}
		assertNearestEven(t, "f32ToF16", x, f32ToF16(u), halfRef, 0x7bff)
	}
}

// TestBF16RoundsToNearestEven does the same for bfloat16 over float32's
// whole finite range short of the clamp.
func TestBF16RoundsToNearestEven(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	value := func(h uint16) float64 { return float64(math.Float32frombits(uint32(h) << 16)) }
	for i := range 1 << 20 {
		u := rng.Uint32()
		if i%4 == 0 {
			u = u&^0xffff | 0x8000 // exact ties
		}
		x := math.Float32frombits(u)
		if u&f32ExpMask == f32ExpMask || u&^f32SignBit >= bf16ClampBits {
			continue
		}
		assertNearestEven(t, "f32ToBF16", x, f32ToBF16(u), value, 0x7f7f)
	}
}
