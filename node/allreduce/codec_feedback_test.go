package allreduce

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// feedbackRounds sends rounds vectors (round t's from next(t)) as two
// parts, split off the int8 block grid, and returns the largest gap
// between the running sum of what a receiver decoded and the running sum
// of what was meant to be sent, plus the largest single-round Bound seen.
func feedbackRounds(t *testing.T, ef *ErrorFeedback, c Codec, n, rounds int, next func(int) []float32) (gap, bound float64) {
	t.Helper()
	sent, decoded := make([]float64, n), make([]float64, n)
	dec := make([]float32, n)
	split := n * 3 / 5
	for r := range rounds {
		x := next(r)
		bound = max(bound, c.Bound(x))
		for _, part := range [][2]int{{0, split}, {split, n}} {
			xs := x[part[0]:part[1]]
			var enc []byte
			if ef != nil {
				var err error
				if enc, err = ef.Encode(nil, part[0], xs); err != nil {
					t.Fatal(err)
				}
			} else {
				enc = c.Encode(nil, xs)
			}
			if err := c.Decode(dec[part[0]:part[1]], enc); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			sent[i] += float64(x[i])
			decoded[i] += float64(dec[i])
		}
	}
	for i := range n {
		gap = max(gap, math.Abs(sent[i]-decoded[i]))
	}
	return gap, bound
}

// TestErrorFeedbackNoDrift is why error feedback exists: sending the same
// vector for many rounds through int8, the receivers' running sum stays
// within one round's error of the true sum with feedback, while without
// it the rounding bias grows with every round.
func TestErrorFeedbackNoDrift(t *testing.T) {
	const n, rounds = 1000, 400
	c := mustCodec(t, "int8")
	x := randomVector(rand.New(rand.NewPCG(9, 10)), n)
	same := func(int) []float32 { return x }

	gap, bound := feedbackRounds(t, NewErrorFeedback(c, n), c, n, rounds, same)
	// The last residual is within Bound of the compensated values, whose
	// magnitudes exceed x's by at most one residual (a factor 1+1/254).
	if gap > bound*1.01 {
		t.Errorf("with feedback: running sums differ by %g after %d rounds, want <= one round's bound %g", gap, rounds, bound)
	}
	noEF, _ := feedbackRounds(t, nil, c, n, rounds, same)
	if noEF < 100*bound {
		t.Errorf("without feedback: running sums differ by only %g after %d rounds (bound %g): the test does not show drift", noEF, rounds, bound)
	}
	t.Logf("after %d rounds: gap %.3g with feedback, %.3g without (one round's bound %.3g)", rounds, gap, noEF, bound)
}

// TestErrorFeedbackVaryingInput checks the same guarantee when every round
// sends a different vector, as training does.
func TestErrorFeedbackVaryingInput(t *testing.T) {
	const n, rounds = 777, 300
	rng := rand.New(rand.NewPCG(11, 12))
	for _, name := range []string{"int8", "fp16", "bf16", "none"} {
		c := mustCodec(t, name)
		next := func(int) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
			return v
		}
		gap, bound := feedbackRounds(t, NewErrorFeedback(c, n), c, n, rounds, next)
		// Float32 rounding of x+r adds up to 2^-24·|x+r| per round.
		if slack := rounds * 0x1p-24 * 8; gap > bound*1.01+slack {
			t.Errorf("%s: running sums differ by %g after %d rounds, want <= %g", name, gap, rounds, bound*1.01+slack)
		}
	}
}

func TestErrorFeedbackBadInput(t *testing.T) {
	c := mustCodec(t, "int8")
	ef := NewErrorFeedback(c, 10)
	for _, tc := range []struct{ off, n int }{{-1, 1}, {11, 0}, {5, 6}, {0, 11}} {
		if _, err := ef.Encode(nil, tc.off, make([]float32, tc.n)); err == nil {
			t.Errorf("Encode(off %d, %d values) of a 10-value sender: no error", tc.off, tc.n)
		}
	}

	// A NaN that reaches the sender is refused, and does not poison the
	// residual for the rounds after it.
	x := []float32{1, 0.3, float32(math.NaN()), 4, 0.5, 0.7, 0.1, 2, 3, 1}
	prefix := []byte{7}
	out, err := ef.Encode(prefix, 0, x)
	if !errors.Is(err, ErrBadEncoding) || len(out) != 1 {
		t.Fatalf("Encode with NaN = %d bytes, %v; want the prefix back and ErrBadEncoding", len(out), err)
	}
	x[2] = 2.5
	enc, err := ef.Encode(nil, 0, x)
	if err != nil {
		t.Fatal(err)
	}
	dec := make([]float32, len(x))
	if err := c.Decode(dec, enc); err != nil {
		t.Fatal(err)
	}
	assertWithin(t, "after NaN", c, x, dec)
}
