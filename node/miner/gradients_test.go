package miner

import (
	"context"
	"math"
	"testing"

	"github.com/dtrain-dev/dtrain/torch"
)

// TestGradientsStepIsOneBigBatch: in gradients mode, two miners that
// accumulate different numbers of micro-batches (3 and 2) up to their
// target and average their gradients weighted by samples hold the
// gradient of the one big batch of all five micro-batches, and the AdamW
// step they take from it is the big batch's step. An unweighted mean, or a
// miner that sums its micro-batches' gradients instead of averaging them,
// is off by far more than the tolerances.
func TestGradientsStepIsOneBigBatch(t *testing.T) {
	if err := torch.SetThreads(1); err != nil {
		t.Fatal(err)
	}
	tr, _ := tinyData(t)
	a, b, big := bareMiner(t, "gradients", 1), bareMiner(t, "gradients", 1), bareMiner(t, "gradients", 1)
	micro, seq := a.cfg.Loop.MicroBatch, a.cfg.Data.SeqLen
	// Micro-batch i of the five holds windows 7·(i·micro+j); a miner
	// trains on them from micro-batch first.
	from := func(first int) *epochLane {
		return &epochLane{
			windows: func(k int64) ([]int64, error) {
				w := make([]int64, micro)
				for j := range w {
					w[j] = int64(7 * ((first+int(k))*micro + j))
				}
				return w, nil
			},
			seed: func(int64) uint64 { return 0 },
			ds:   tr, micro: micro, seqLen: seq, trained: newLaneDigest(),
		}
	}
	grad := func(m *Miner, first, micros int) ([]float32, int64) {
		t.Helper()
		m.cfg.Swarm.TargetBatchSize = micros * micro // alone, a miner stops at its target
		start := make([]float32, m.model.NumParams())
		if err := m.model.Params(start); err != nil {
			t.Fatal(err)
		}
		vec, _, samples, err := m.localWork(context.Background(), start, from(first), &driver{m: m})
		if err != nil {
			t.Fatal(err)
		}
		if samples != int64(micros*micro) {
			t.Fatalf("a miner with target %d trained %d samples", micros*micro, samples)
		}
		return vec, samples
	}
	ga, na := grad(a, 0, 3)
	gb, nb := grad(b, 3, 2)
	want, _ := grad(big, 0, 5)
	mean := make([]float32, len(ga))
	unweighted := make([]float32, len(ga))
	for i := range mean {
		mean[i] = float32((float64(na)*float64(ga[i]) + float64(nb)*float64(gb[i])) / float64(na+nb))
		unweighted[i] = (ga[i] + gb[i]) / 2
	}
	// The big batch sums five micro-batches' float32 gradients in another
	// order and divides once: the two differ by rounding, a few float32
	// ulps of each element, far below 1e-5 of the norm; the unweighted
	// mean is off by several percent.
	if d := relDiff(mean, want); !(d <= 1e-5) {
		t.Fatalf("samples-weighted mean of the miners' gradients differs from the big batch's by %.3g of its norm", d)
	}
	if d := relDiff(unweighted, want); d < 1e-3 {
		t.Fatalf("the unweighted mean is as close (%.3g) as the weighted one: the test cannot tell them apart", d)
	}
	// Past the warmup, where the learning rate is not 0.
	a.step, big.step = 3, 3
	before := make([]float32, a.model.NumParams())
	if err := a.model.Params(before); err != nil {
		t.Fatal(err)
	}
	if _, err := a.apply(nil, mean); err != nil {
		t.Fatal(err)
	}
	if _, err := big.apply(nil, want); err != nil {
		t.Fatal(err)
	}
	pa, pbig := make([]float32, len(before)), make([]float32, len(before))
	if err := a.model.Params(pa); err != nil {
		t.Fatal(err)
	}
	if err := big.model.Params(pbig); err != nil {
		t.Fatal(err)
	}
	stepA, stepBig := make([]float32, len(before)), make([]float32, len(before))
	for i := range before {
		stepA[i], stepBig[i] = pa[i]-before[i], pbig[i]-before[i]
	}
	// AdamW's first step is about lr·g/|g| per element: gradients that
	// agree to rounding give steps that agree to rounding, except where an
	// element's gradient is itself at rounding level; 1e-3 of the step's
	// norm leaves room for a few such elements and none for a wrong mean.
	t.Logf("grad %.3g unweighted %.3g step %.3g", relDiff(mean, want), relDiff(unweighted, want), relDiff(stepA, stepBig))
	if d := relDiff(stepA, stepBig); !(d <= 1e-3) {
		t.Fatalf("the step from the averaged gradient differs from the big batch's step by %.3g of its norm", d)
	}
	if a.step != 4 || big.step != 4 {
		t.Fatalf("optimizer steps: %d and %d, want 4", a.step, big.step)
	}
}

// relDiff is ‖a − b‖ / ‖b‖: NaN when b is zero, which no bound accepts.
func relDiff(a, b []float32) float64 {
	var d, n float64
	for i := range a {
		x := float64(a[i]) - float64(b[i])
		d += x * x
		n += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(d / n)
}
