package allreduce

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

var allCodecs = []string{"none", "fp16", "bf16", "int8"}

func mustCodec(t testing.TB, name string) Codec {
	t.Helper()
	c, err := ParseCodec(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseCodecAndByID(t *testing.T) {
	for i, name := range allCodecs {
		c := mustCodec(t, name)
		if c.ID() != CodecID(i) || c.ID().String() != name {
			t.Errorf("ParseCodec(%q) = %v (id %d)", name, c.ID(), c.ID())
		}
		back, err := CodecByID(c.ID())
		if err != nil || back.ID() != c.ID() {
			t.Errorf("CodecByID(%d) = %v, %v", c.ID(), back, err)
		}
	}
	if _, err := ParseCodec("int4"); !errors.Is(err, ErrUnknownCodec) {
		t.Errorf("ParseCodec(int4) error = %v, want ErrUnknownCodec", err)
	}
	if _, err := CodecByID(200); !errors.Is(err, ErrUnknownCodec) {
		t.Errorf("CodecByID(200) error = %v, want ErrUnknownCodec", err)
	}
}

// TestEncodedLen pins the wire sizes, which set how much each codec saves.
func TestEncodedLen(t *testing.T) {
	cases := []struct {
		codec string
		n     int
		want  int
	}{
		{"none", 0, 0}, {"none", 1000, 4000},
		{"fp16", 1000, 2000}, {"bf16", 1000, 2000},
		{"int8", 0, 0}, {"int8", 1, 5}, {"int8", 256, 260}, {"int8", 257, 265},
		{"int8", 1 << 20, 1<<20 + 4<<12},
	}
	for _, tc := range cases {
		if got := mustCodec(t, tc.codec).EncodedLen(tc.n); got != tc.want {
			t.Errorf("%s.EncodedLen(%d) = %d, want %d", tc.codec, tc.n, got, tc.want)
		}
	}
}

func roundTrip(t testing.TB, c Codec, src []float32) []float32 {
	t.Helper()
	prefix := []byte{0xde, 0xad}
	enc := c.Encode(prefix, src)
	if len(enc) != len(prefix)+c.EncodedLen(len(src)) || enc[0] != 0xde || enc[1] != 0xad {
		t.Fatalf("%v: Encode appended %d bytes (prefix %x), want %d after the prefix",
			c.ID(), len(enc)-len(prefix), enc[:2], c.EncodedLen(len(src)))
	}
	dst := make([]float32, len(src))
	if err := c.Decode(dst, enc[len(prefix):]); err != nil {
		t.Fatalf("%v: decode of own encoding: %v", c.ID(), err)
	}
	return dst
}

// TestCodecSpecialValues checks exact outputs where rounding rules decide
// them: signed zero, subnormals, ties to even, and overflow clamping.
func TestCodecSpecialValues(t *testing.T) {
	maxF := float32(math.MaxFloat32)
	cases := []struct {
		codec string
		in    float32
		want  float32
	}{
		{"none", float32(math.Copysign(0, -1)), float32(math.Copysign(0, -1))},
		{"none", 0x1p-149, 0x1p-149},
		{"none", maxF, maxF},

		{"fp16", 0, 0},
		{"fp16", float32(math.Copysign(0, -1)), float32(math.Copysign(0, -1))},
		{"fp16", 1, 1},
		{"fp16", 0.1, 0.0999755859375},
		{"fp16", 1 + 0x1p-11, 1},            // tie, to even
		{"fp16", 1 + 3*0x1p-11, 1 + 0x1p-9}, // tie, to even (up)
		{"fp16", 1 + 0x1p-11 + 0x1p-20, 1 + 0x1p-10},
		{"fp16", 0x1p-14, 0x1p-14},         // smallest normal
		{"fp16", 0x1p-24, 0x1p-24},         // smallest subnormal
		{"fp16", 3 * 0x1p-24, 3 * 0x1p-24}, // subnormal, exact
		{"fp16", 0x1p-25, 0},               // tie, to even (zero)
		{"fp16", 3 * 0x1p-25, 2 * 0x1p-24}, // tie, to even (up)
		{"fp16", -0x1p-26, float32(math.Copysign(0, -1))},
		{"fp16", 0x1.ffcp-15, 0x1p-14}, // subnormal tie rounds up to normal
		{"fp16", 65504, 65504},         // largest half
		{"fp16", 65519, 65504},         // rounds down
		{"fp16", 65520, 65504},         // would round to Inf: clamped
		{"fp16", -1e6, -65504},         // clamped
		{"fp16", maxF, 65504},          // clamped
		{"fp16", 0x1p-149, 0},          // float32 subnormal underflows

		{"bf16", float32(math.Copysign(0, -1)), float32(math.Copysign(0, -1))},
		{"bf16", 1 + 0x1p-8, 1},            // tie, to even
		{"bf16", 1 + 3*0x1p-8, 1 + 0x1p-6}, // tie, to even (up)
		{"bf16", 3.14159265, 3.140625},
		{"bf16", 0x1p-126, 0x1p-126},     // smallest float32 normal
		{"bf16", 0x1p-133, 0x1p-133},     // smallest bf16 subnormal
		{"bf16", 0x1p-149, 0},            // below half the spacing
		{"bf16", 0x1.fep127, 0x1.fep127}, // largest bf16
		{"bf16", maxF, 0x1.fep127},       // would round to Inf: clamped
		{"bf16", -maxF, -0x1.fep127},

		{"int8", 0, 0},
		{"int8", float32(math.Copysign(0, -1)), 0},
		{"int8", -3, -3}, // a lone value is its block's maximum
	}
	for _, tc := range cases {
		c := mustCodec(t, tc.codec)
		got := roundTrip(t, c, []float32{tc.in})[0]
		// Exact: the codecs are specified bit for bit (round to nearest even,
		// in integer arithmetic for fp16 and bf16), the same on every CPU.
		if math.Float32bits(got) != math.Float32bits(tc.want) {
			t.Errorf("%s(%g) = %g (%#x), want %g (%#x)", tc.codec, tc.in, got,
				math.Float32bits(got), tc.want, math.Float32bits(tc.want))
		}
	}
}

// TestInt8SpecialBlocks covers blocks at the edges of float32's range:
// they must decode (no Inf from 127·scale, no division by a zero scale)
// and stay within the documented bound.
func TestInt8SpecialBlocks(t *testing.T) {
	maxF := float32(math.MaxFloat32)
	cases := map[string][]float32{
		"zeros":             make([]float32, 300),
		"max float32":       {maxF, -maxF, maxF / 3, 1},
		"subnormal":         {0x1p-149, 3 * 0x1p-149, -0x1p-140, 0x1p-130},
		"huge and tiny":     {1e30, 1e-30, -1e-3},
		"tiny max":          {0x1p-149, 0, -0x1p-149},
		"min normal region": {0x1p-119, -0x1.3p-120, 0x1p-125},
	}
	c := mustCodec(t, "int8")
	for name, src := range cases {
		got := roundTrip(t, c, src)
		assertWithin(t, name, c, src, got)
	}
}

// elemBound is each codec's documented per-element guarantee; for int8 it
// needs the maximum of the element's block.
func elemBound(id CodecID, x float32, blockMax float64) float64 {
	a := math.Abs(float64(x))
	switch id {
	case CodecFP16:
		return max(a*0x1p-11, 0x1p-25, a-fp16Max)
	case CodecBF16:
		return max(a*0x1p-8, 0x1p-134, a-bf16Max)
	case CodecInt8:
		return int8ElemBound(blockMax)
	}
	return 0
}

// assertWithin checks got against src element by element with both the
// per-element guarantee and the codec's Bound for the whole slice.
func assertWithin(t *testing.T, name string, c Codec, src, got []float32) {
	t.Helper()
	bound := c.Bound(src)
	for b := 0; b < len(src); b += Int8BlockSize {
		block := src[b:min(b+Int8BlockSize, len(src))]
		m := codecMaxAbs(block)
		for i, x := range block {
			err := math.Abs(float64(x) - float64(got[b+i]))
			if eb := elemBound(c.ID(), x, m); err > eb || err > bound {
				t.Fatalf("%s %v: element %d: %g decoded as %g, error %g > bound %g (element) / %g (Bound)",
					name, c.ID(), b+i, x, got[b+i], err, eb, bound)
			}
		}
	}
}

// randomVector draws n values with log-uniform magnitudes in
// [1e-6, 1e4], random signs and a sprinkling of exact zeros, like a
// pseudo-gradient.
func randomVector(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		if rng.IntN(50) == 0 {
			continue
		}
		x := float32(math.Pow(10, -6+10*rng.Float64()))
		if rng.IntN(2) == 0 {
			x = -x
		}
		v[i] = x
	}
	return v
}

// TestCodecBoundsProperty is the property the all-reduce relies on: for
// random parts (lengths 0..5000, not multiples of the int8 block; mixed
// magnitudes) every element decodes within its codec's documented bound,
// and CodecNone is exact.
func TestCodecBoundsProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range allCodecs {
		c := mustCodec(t, name)
		for trial := range 300 {
			n := rng.IntN(5001)
			if trial < 5 {
				n = []int{0, 1, 255, 256, 257}[trial]
			}
			src := randomVector(rng, n)
			if trial%3 == 0 {
				// A narrow magnitude range makes int8 blocks use all 255 steps.
				for i := range src {
					src[i] = float32(rng.NormFloat64())
				}
			}
			got := roundTrip(t, c, src)
			assertWithin(t, name, c, src, got)
			if c.ID() == CodecNone { // exact: it copies bits
				for i := range src {
					if math.Float32bits(got[i]) != math.Float32bits(src[i]) {
						t.Fatalf("none: element %d: %g != %g", i, got[i], src[i])
					}
				}
			}
		}
	}
}

// TestCodecBoundIsTight checks that the documented bounds are not so loose
// that tests using them would accept a broken codec: on many random values
// the worst error seen reaches most of the bound.
func TestCodecBoundIsTight(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := make([]float32, 1<<16)
	for i := range src {
		src[i] = float32(1 + rng.Float64()) // [1, 2): fp16 bound 2^-10 abs max
	}
	for _, name := range []string{"fp16", "bf16", "int8"} {
		c := mustCodec(t, name)
		got := roundTrip(t, c, src)
		worst := 0.0
		for i := range src {
			worst = max(worst, math.Abs(float64(src[i])-float64(got[i])))
		}
		if b := c.Bound(src); worst < 0.4*b {
			t.Errorf("%s: worst error %g is under 40%% of Bound %g: bound is loose or codec wrong", name, worst, b)
		}
	}
}

// TestEncodeNonFiniteIsRejected checks that a NaN or Inf that slipped past
// the sender's checks can never reach an average as a finite value.
func TestEncodeNonFiniteIsRejected(t *testing.T) {
	for _, name := range allCodecs {
		c := mustCodec(t, name)
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			src := []float32{1, 2, bad, 4}
			if b := c.Bound(src); !math.IsInf(b, 1) {
				t.Errorf("%s: Bound with %g = %g, want +Inf", name, bad, b)
			}
			err := c.Decode(make([]float32, len(src)), c.Encode(nil, src))
			if !errors.Is(err, ErrBadEncoding) {
				t.Errorf("%s: encoding of %g decoded with error %v, want ErrBadEncoding", name, bad, err)
			}
		}
	}
}

// TestDecodeRejects feeds each decoder malformed payloads: each must return
// an error wrapping ErrBadEncoding that says what was wrong.
func TestDecodeRejects(t *testing.T) {
	le32 := func(u uint32) []byte { return []byte{byte(u), byte(u >> 8), byte(u >> 16), byte(u >> 24)} }
	int8Block := func(scale uint32, q ...byte) []byte { return append(le32(scale), q...) }
	cases := []struct {
		name    string
		codec   string
		n       int
		payload []byte
		want    string
	}{
		{"none short", "none", 2, make([]byte, 7), "got 7 bytes, want 8"},
		{"none long", "none", 2, make([]byte, 9), "got 9 bytes, want 8"},
		{"none NaN", "none", 2, append(le32(0), le32(0x7fc00000)...), "element 1 is not finite"},
		{"none -Inf", "none", 1, le32(0xff800000), "element 0 is not finite"},
		{"fp16 empty", "fp16", 3, nil, "got 0 bytes, want 6"},
		{"fp16 Inf", "fp16", 2, []byte{0, 0x3c, 0, 0x7c}, "element 1 is not finite"},
		{"fp16 NaN", "fp16", 1, []byte{1, 0xfe}, "element 0 is not finite"},
		{"bf16 odd", "bf16", 1, []byte{0}, "got 1 bytes, want 2"},
		{"bf16 NaN", "bf16", 2, []byte{0x80, 0x3f, 0xc0, 0x7f}, "element 1 is not finite"},
		{"bf16 -Inf", "bf16", 1, []byte{0x80, 0xff}, "element 0 is not finite"},
		{"int8 no scale", "int8", 3, []byte{1, 2, 3}, "got 3 bytes, want 7"},
		{"int8 negative scale", "int8", 2, int8Block(0xbf800000, 1, 2), "block at element 0 has scale -1"},
		{"int8 NaN scale", "int8", 1, int8Block(0x7fc00000, 1), "has scale NaN"},
		{"int8 Inf scale", "int8", 1, int8Block(0x7f800000, 1), "has scale +Inf"},
		{"int8 scale overflows", "int8", 1, int8Block(0x7f000000, 1), "has scale"},
		{"int8 -128", "int8", 3, int8Block(0x3c000000, 1, 0x80, 3), "element 1 is -128"},
		{"int8 second block", "int8", 257,
			append(append(int8Block(0, make([]byte, 256)...), le32(0xbf800000)...), 0),
			"block at element 256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := mustCodec(t, tc.codec).Decode(make([]float32, tc.n), tc.payload)
			if !errors.Is(err, ErrBadEncoding) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode error = %v, want ErrBadEncoding mentioning %q", err, tc.want)
			}
		})
	}
}

// TestFirstNonFinite checks the word-at-a-time scan against a value-at-a-
// time one, for every position of one bad value in slices of every start
// alignment and of lengths around its block and word sizes, and for the
// largest finite values, whose exponents are one short of a carry.
func TestFirstNonFinite(t *testing.T) {
	bads := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fc00001), math.Float32frombits(0xffffffff)}
	backing := make([]float32, 1100)
	for i := range backing {
		backing[i] = math.MaxFloat32
		if i%3 == 0 {
			backing[i] = -math.MaxFloat32
		}
	}
	for _, start := range []int{0, 1} {
		for _, n := range []int{0, 1, 2, 3, 511, 512, 513, 1025} {
			v := backing[start : start+n]
			if got := firstNonFinite(v); got != -1 {
				t.Fatalf("start %d, %d finite values: got %d, want -1", start, n, got)
			}
			for pos := 0; pos < n; pos++ {
				bad := bads[pos%len(bads)]
				keep := v[pos]
				v[pos] = bad
				if got := firstNonFinite(v); got != pos {
					t.Fatalf("start %d, n %d: %v at %d: got %d", start, n, bad, pos, got)
				}
				if pos+1 < n { // a second bad value later changes nothing
					keep2 := v[n-1]
					v[n-1] = bad
					if got := firstNonFinite(v); got != pos {
						t.Fatalf("start %d, n %d: bad at %d and %d: got %d", start, n, pos, n-1, got)
					}
					v[n-1] = keep2
				}
				v[pos] = keep
			}
		}
	}
}
