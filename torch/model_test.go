package torch

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// tinyConfig is a GPT-2 small enough for finite differences: every tensor
// kind is present, dropout is off, and a wide init gives gradients well
// above float32 noise.
func tinyConfig() Config {
	c := NewConfig(2, 2, 16, 8, 23)
	c.EmbdPdrop, c.AttnPdrop, c.ResidPdrop = 0, 0, 0
	c.InitializerRange = 0.2
	return c
}

func randomBatch(rng *rand.Rand, b, t, vocab int) Batch {
	x, y := make([]int32, b*t), make([]int32, b*t)
	for i := range x {
		x[i], y[i] = int32(rng.IntN(vocab)), int32(rng.IntN(vocab))
	}
	return Batch{X: x, Y: y, B: b, T: t}
}

func newTestModel(t *testing.T, c Config, seed uint64) *Model {
	t.Helper()
	m, err := NewModel(c, CPU, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func meanLoss(t *testing.T, m *Model, b Batch) float64 {
	t.Helper()
	sum, n, err := m.EvalLoss(b)
	if err != nil {
		t.Fatal(err)
	}
	return sum / float64(n)
}

// TestGradientsMatchFiniteDifferences checks the analytic gradient of every
// tensor (including wte and wpe, whose gradients are assembled by hand, and
// the fused LM head) against central differences of the eval loss.
//
// It runs with the attention in the plain form (the default block is
// longer than the sequence) and in blocks of 3 query rows (7 = 3+3+1: a
// ragged last block).
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	for _, block := range []int{256, 3} {
		t.Run(fmt.Sprintf("block%d", block), func(t *testing.T) { checkFiniteDifferences(t, block) })
	}
}

func checkFiniteDifferences(t *testing.T, block int) {
	c := tinyConfig()
	m := newTestModel(t, c, 1)
	if err := m.SetAttentionBlock(block); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b := randomBatch(rng, 2, 7, c.VocabSize)
	b.Y[3] = Ignore // ignored targets must not contribute

	if _, _, err := m.TrainStep(b, 1); err != nil {
		t.Fatal(err)
	}
	grad := make([]float32, m.NumParams())
	params := make([]float32, m.NumParams())
	if err := m.Grads(grad); err != nil {
		t.Fatal(err)
	}
	if err := m.Params(params); err != nil {
		t.Fatal(err)
	}
	const h = 1e-2
	lossAt := func(i int64, v float32) float64 {
		p := slices.Clone(params)
		p[i] = v
		if err := m.SetParams(p); err != nil {
			t.Fatal(err)
		}
		return meanLoss(t, m, b)
	}
	for _, p := range m.Layout() {
		// The largest gradient of each tensor and two random elements.
		idx := []int64{p.Offset + int64(rng.IntN(int(p.Numel()))), p.Offset + int64(rng.IntN(int(p.Numel())))}
		best := p.Offset
		for i := p.Offset; i < p.Offset+p.Numel(); i++ {
			if math.Abs(float64(grad[i])) > math.Abs(float64(grad[best])) {
				best = i
			}
		}
		idx = append(idx, best)
		for _, i := range idx {
			fd := (lossAt(i, params[i]+h) - lossAt(i, params[i]-h)) / (2 * h)
			an := float64(grad[i])
			if math.Abs(fd-an) > 2e-4+2e-2*math.Abs(an) {
				t.Errorf("%s[%d]: analytic %.6g, finite difference %.6g", p.Name, i-p.Offset, an, fd)
			}
		}
		if grad[best] == 0 { // exact zero: a tensor no loss term reached
			t.Errorf("%s: gradient is all zero", p.Name)
		}
	}
}

// TestGradientAccumulates checks that two half-scaled steps on the same
// batch equal one full step, and that ZeroGrad clears.
func TestGradientAccumulates(t *testing.T) {
	c := tinyConfig()
	m := newTestModel(t, c, 3)
	b := randomBatch(rand.New(rand.NewPCG(3, 4)), 3, 8, c.VocabSize)
	one, two := make([]float32, m.NumParams()), make([]float32, m.NumParams())
	if _, _, err := m.TrainStep(b, 1); err != nil {
		t.Fatal(err)
	}
	m.Grads(one)
	m.ZeroGrad()
	for range 2 {
		if _, _, err := m.TrainStep(b, 0.5); err != nil {
			t.Fatal(err)
		}
	}
	m.Grads(two)
	for i := range one {
		if d := math.Abs(float64(one[i] - two[i])); d > 1e-6+1e-5*math.Abs(float64(one[i])) {
			t.Fatalf("grad[%d]: one step %g, two half steps %g", i, one[i], two[i])
		}
	}
	m.ZeroGrad()
	m.Grads(one)
	// Exact: ZeroGrad writes zeros, no arithmetic.
	if i := slices.IndexFunc(one, func(v float32) bool { return v != 0 }); i >= 0 {
		t.Fatalf("after ZeroGrad grad[%d] = %g", i, one[i])
	}
}

// TestOverfitsOneBatch trains a tiny model on one batch until it memorizes.
func TestOverfitsOneBatch(t *testing.T) {
	c := tinyConfig()
	c.InitializerRange = 0.02
	m := newTestModel(t, c, 5)
	opt, err := NewAdamW(m, AdamWConfig{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	b := randomBatch(rand.New(rand.NewPCG(5, 6)), 4, 8, c.VocabSize)
	first, last := 0.0, 0.0
	for step := range 300 {
		m.ZeroGrad()
		loss, _, err := m.TrainStep(b, 1)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = loss
		}
		last = loss
		if _, err := m.ClipGradNorm(1); err != nil {
			t.Fatal(err)
		}
		if err := opt.Step(1e-2); err != nil {
			t.Fatal(err)
		}
	}
	if math.Abs(first-math.Log(float64(c.VocabSize))) > 0.3 {
		t.Errorf("initial loss %.3f, want about ln(%d) = %.3f", first, c.VocabSize, math.Log(float64(c.VocabSize)))
	}
	if last >= 0.1 {
		t.Errorf("loss after 300 steps on one batch = %.4f, want < 0.1", last)
	}
}

// TestSaveLoadSameLogits saves a model, loads it, and compares logits: bit
// for bit where the loaded model repeats the very computation of the saved
// one (same batch, same GEMM shapes, same thread count), and within a
// rounding bound where the last-position logits come from a GEMM of another
// shape than the full ones.
func TestSaveLoadSameLogits(t *testing.T) {
	c := tinyConfig()
	m := newTestModel(t, c, 7)
	b := randomBatch(rand.New(rand.NewPCG(7, 8)), 2, 8, c.VocabSize)
	want, err := m.Logits(b, false)
	if err != nil {
		t.Fatal(err)
	}
	wantLast, err := m.Logits(b, true)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := SaveModel(dir, m); err != nil {
		t.Fatal(err)
	}
	m2, err := LoadModel(dir, CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	got, err := m2.Logits(b, false)
	if err != nil {
		t.Fatal(err)
	}
	// Exact: the same computation on the same weights, if saving lost nothing.
	if !slices.Equal(got, want) {
		t.Fatal("logits differ after save and load")
	}
	last, err := m2.Logits(b, true)
	if err != nil {
		t.Fatal(err)
	}
	// Exact: the same last-position computation as wantLast.
	if !slices.Equal(last, wantLast) {
		t.Fatal("last-position logits differ after save and load")
	}
	// Within a bound: last is hidden[B,E]·wteᵀ, want hidden[B·T,E]·wteᵀ
	// over the same hidden rows; BLAS may sum a GEMM of another shape in
	// another order (OpenBLAS's Haswell and Zen kernels do: 1.8e-7 apart on
	// a Zen 4, none on a Sapphire Rapids).
	bound := logitBounds(t, m2)
	v, tt := c.VocabSize, b.T
	var worst float64 // largest difference as a fraction of its bound
	for s := range b.B {
		for j := range v {
			l, f := last[s*v+j], want[(s*tt+tt-1)*v+j]
			d := math.Abs(float64(l) - float64(f))
			if !(d <= bound[j]) {
				t.Fatalf("sequence %d, token %d: last-position logit %.9g, full logits' %.9g: %.3g apart, bound %.3g",
					s, j, l, f, d, bound[j])
			}
			worst = math.Max(worst, d/bound[j])
		}
	}
	t.Logf("last-position and full logits: largest difference %.2g of its bound", worst)
}

// logitBounds bounds, for each token v, how far apart two float32
// evaluations of the logit h·w_v may land whatever order the GEMM sums in:
// each is within γ_E·Σ|h_i·w_vi| of the exact dot product (Higham,
// "Accuracy and Stability of Numerical Algorithms", eq. 3.5; γ_E =
// E·u/(1-E·u), u = 2^-24), and Σ|h_i·w_vi| <= ‖h‖·‖w_v‖. h is ln_f's output
// g⊙x̂+b with ‖x̂‖ <= √E, so ‖h‖ <= max|g|·√E + ‖b‖; 1% covers the rounding
// of h itself.
func logitBounds(t *testing.T, m *Model) []float64 {
	t.Helper()
	p := make([]float32, m.NumParams())
	if err := m.Params(p); err != nil {
		t.Fatal(err)
	}
	tensor := map[string][]float32{}
	for _, l := range m.Layout() {
		tensor[l.Name] = p[l.Offset : l.Offset+l.Numel()]
	}
	norm := func(x []float32) float64 {
		var s float64
		for _, v := range x {
			s += float64(v) * float64(v)
		}
		return math.Sqrt(s)
	}
	e := m.Config().NEmbd
	var gmax float64
	for _, g := range tensor["ln_f.weight"] {
		gmax = math.Max(gmax, math.Abs(float64(g)))
	}
	h := 1.01 * (gmax*math.Sqrt(float64(e)) + norm(tensor["ln_f.bias"]))
	u := 0x1p-24
	gamma := float64(e) * u / (1 - float64(e)*u)
	wte := tensor["wte.weight"]
	bound := make([]float64, m.Config().VocabSize)
	for v := range bound {
		bound[v] = 2 * gamma * h * norm(wte[v*e:(v+1)*e])
	}
	return bound
}

// TestSeedDeterminesInit checks GPT-2's init statistics and that a seed
// reproduces the weights exactly.
func TestSeedDeterminesInit(t *testing.T) {
	c := NewConfig(4, 2, 64, 32, 101)
	a, b, d := newTestModel(t, c, 9), newTestModel(t, c, 9), newTestModel(t, c, 10)
	pa, pb, pd := make([]float32, a.NumParams()), make([]float32, a.NumParams()), make([]float32, a.NumParams())
	a.Params(pa)
	b.Params(pb)
	d.Params(pd)
	// Exact: the same init from the same seed, twice in one process.
	if !slices.Equal(pa, pb) {
		t.Fatal("same seed, different weights")
	}
	if slices.Equal(pa, pd) {
		t.Fatal("different seeds, same weights")
	}
	std := func(p Param) float64 {
		var s float64
		for _, v := range pa[p.Offset : p.Offset+p.Numel()] {
			s += float64(v) * float64(v)
		}
		return math.Sqrt(s / float64(p.Numel()))
	}
	want := map[string]float64{
		"wte.weight": 0.02, "h.0.attn.c_attn.weight": 0.02, "h.0.mlp.c_fc.weight": 0.02,
		"h.0.attn.c_proj.weight": 0.02 / math.Sqrt(8), "h.3.mlp.c_proj.weight": 0.02 / math.Sqrt(8),
		"h.0.ln_1.weight": 1, "h.0.attn.c_attn.bias": 0, "ln_f.bias": 0,
	}
	for _, p := range a.Layout() {
		if w, ok := want[p.Name]; ok && math.Abs(std(p)-w) > 0.1*w+1e-9 {
			t.Errorf("%s: rms %.5f, want %.5f", p.Name, std(p), w)
		}
	}
}

func TestBadBatchesAreRejected(t *testing.T) {
	c := tinyConfig()
	m := newTestModel(t, c, 11)
	good := randomBatch(rand.New(rand.NewPCG(1, 1)), 1, 4, c.VocabSize)
	cases := map[string]Batch{
		"token past vocab": {X: []int32{0, 1, 2, 23}, Y: good.Y, B: 1, T: 4},
		"negative input":   {X: []int32{0, -1, 2, 3}, Y: good.Y, B: 1, T: 4},
		"target -2":        {X: good.X, Y: []int32{0, -2, 2, 3}, B: 1, T: 4},
		"too long":         randomBatch(rand.New(rand.NewPCG(1, 1)), 1, 9, c.VocabSize),
		"length mismatch":  {X: good.X, Y: good.Y, B: 2, T: 4},
		"empty":            {B: 0, T: 4},
	}
	for name, b := range cases {
		if _, _, err := m.TrainStep(b, 1); err == nil {
			t.Errorf("%s: TrainStep accepted it", name)
		}
	}
	if err := m.SetParams(make([]float32, 3)); err == nil {
		t.Error("SetParams accepted a short buffer")
	}
	p := make([]float32, m.NumParams())
	p[5] = float32(math.NaN())
	if err := m.SetParams(p); err == nil {
		t.Error("SetParams accepted NaN")
	}
	m.Close()
	if _, _, err := m.TrainStep(good, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

// Reseeding dropout makes a training step's loss a function of the seed, the
// property exact resume relies on.
func TestSeedDropoutRepeats(t *testing.T) {
	cfg := NewConfig(2, 2, 16, 8, 40)
	cfg.EmbdPdrop, cfg.AttnPdrop, cfg.ResidPdrop = 0.3, 0.3, 0.3
	m, err := NewModel(cfg, CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b := Batch{X: []int32{1, 2, 3, 4, 5, 6, 7, 8}, Y: []int32{2, 3, 4, 5, 6, 7, 8, 9}, B: 1, T: 8}
	loss := func(seed uint64) float64 {
		if err := m.SeedDropout(seed); err != nil {
			t.Fatal(err)
		}
		l, _, err := m.TrainStep(b, 1)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, again, other := loss(7), loss(7), loss(8)
	// Exact: the same step on the same model and batch, twice.
	if a != again {
		t.Errorf("same dropout seed gave losses %v and %v", a, again)
	}
	if a == other {
		t.Errorf("dropout seeds 7 and 8 gave the same loss %v", a)
	}
}
