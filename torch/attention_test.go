package torch

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The blocked causal attention gives the plain form's loss and gradients,
// in 4 blocks (64 rows of a 200-long sequence, the last ragged) and in 2
// (199 and 1). Not bit for bit: each block's scores come from a GEMM
// of another shape than the whole [T,T] one, and dK, dV are summed over
// blocks, so float32 rounding differs; the bounds are a few float32 ulps of
// the values (fp32), and bf16's own rounding (bf16: its 8-bit mantissa, as
// the plain form's bf16 is from fp32).
func TestBlockedAttentionMatchesPlain(t *testing.T) {
	c := NewConfig(2, 2, 32, 200, 97)
	c.EmbdPdrop, c.AttnPdrop, c.ResidPdrop = 0, 0, 0
	b := randomBatch(rand.New(rand.NewPCG(7, 8)), 2, 200, c.VocabSize)
	for _, tc := range []struct {
		prec             Precision
		lossTol, gradTol float64 // relative to the loss, and to each tensor's largest gradient
	}{{FP32, 1e-6, 1e-4}, {BF16, 1e-2, 5e-2}} {
		run := func(block int) (float64, []float32) {
			m := newTestModel(t, c, 4)
			if err := m.SetAttentionBlock(block); err != nil {
				t.Fatal(err)
			}
			return gradsAt(t, m, tc.prec, b)
		}
		plainLoss, plain := run(0)
		m := newTestModel(t, c, 4)
		for _, block := range []int{64, 199} {
			t.Run(fmt.Sprintf("%s-block%d", tc.prec, block), func(t *testing.T) {
				loss, g := run(block)
				if d := math.Abs(loss - plainLoss); d > tc.lossTol*math.Abs(plainLoss) {
					t.Errorf("loss %.8g, plain %.8g", loss, plainLoss)
				}
				for _, p := range m.Layout() {
					var peak, worst float64
					for i := p.Offset; i < p.Offset+p.Numel(); i++ {
						peak = math.Max(peak, math.Abs(float64(plain[i])))
						worst = math.Max(worst, math.Abs(float64(g[i]-plain[i])))
					}
					if worst > tc.gradTol*peak {
						t.Errorf("%s: gradients differ by up to %.3g, the largest is %.3g", p.Name, worst, peak)
					}
				}
			})
		}
	}
}
