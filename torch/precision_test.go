package torch

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestParsePrecision(t *testing.T) {
	cuda := Device{CUDA: true}
	for _, tc := range []struct {
		in   string
		dev  Device
		want Precision
		bad  bool
	}{
		{"fp32", cuda, FP32, false},
		{"BF16", CPU, BF16, false},
		{"auto", cuda, BF16, false},
		{"fp16", cuda, "", true},
		{"float32", CPU, "", true},
	} {
		got, err := ParsePrecision(tc.in, tc.dev)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParsePrecision(%q, %s) = %q, %v; want %q (error %v)", tc.in, tc.dev, got, err, tc.want, tc.bad)
		}
	}
	// auto on the CPU depends on the CPU: both kinds are checked here
	// whichever this one is, and ParsePrecision must ask this one.
	for _, tc := range []struct {
		dev  Device
		bf16 bool
		want Precision
	}{
		{CPU, true, BF16},  // AMX or AVX512-BF16: Sapphire Rapids, Zen 4
		{CPU, false, FP32}, // neither: Zen 3, Skylake, any Arm CPU
		{cuda, false, BF16},
	} {
		if got := autoPrecision(tc.dev, tc.bf16); got != tc.want {
			t.Errorf("autoPrecision(%s, bf16 %v) = %q, want %q", tc.dev, tc.bf16, got, tc.want)
		}
	}
	want := autoPrecision(CPU, CPUHasBF16())
	for _, in := range []string{"", "auto"} {
		if got, err := ParsePrecision(in, CPU); err != nil || got != want {
			t.Errorf("ParsePrecision(%q, cpu) = %q, %v; want %q (CPUHasBF16 %v)", in, got, err, want, CPUHasBF16())
		}
	}
	if a := runtime.GOARCH; a != "amd64" && a != "386" && CPUHasBF16() {
		t.Errorf("CPUHasBF16() on %s: want false, it asks x86's CPUID only", a)
	}
}

// gradsAt runs one training step at precision p and returns the loss and
// the flat gradient.
func gradsAt(t *testing.T, m *Model, p Precision, b Batch) (float64, []float32) {
	t.Helper()
	if err := m.SetPrecision(p); err != nil {
		t.Fatal(err)
	}
	if err := m.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
	loss, _, err := m.TrainStep(b, 1)
	if err != nil {
		t.Fatal(err)
	}
	g := make([]float32, m.NumParams())
	if err := m.Grads(g); err != nil {
		t.Fatal(err)
	}
	return loss, g
}

// TestBF16TracksFP32 checks bf16 mixed precision against float32 on the
// same model and batch: bfloat16 keeps 8 bits of mantissa, so the loss
// agrees to a few parts in a thousand and every tensor's gradient points
// the same way; and the float32 master weights and gradients stay float32.
func TestBF16TracksFP32(t *testing.T) {
	c := NewConfig(2, 2, 64, 32, 512)
	c.EmbdPdrop, c.AttnPdrop, c.ResidPdrop = 0, 0, 0
	m := newTestModel(t, c, 3)
	b := randomBatch(rand.New(rand.NewPCG(3, 4)), 4, 32, c.VocabSize)
	b.Y[5] = Ignore

	loss32, g32 := gradsAt(t, m, FP32, b)
	loss16, g16 := gradsAt(t, m, BF16, b)
	if m.Precision() != BF16 {
		t.Fatalf("Precision() = %q after SetPrecision(BF16)", m.Precision())
	}
	t.Logf("loss fp32 %.6f, bf16 %.6f", loss32, loss16)
	if loss16 == loss32 { // bf16 rounds the matmuls' inputs on every CPU, natively or emulated
		t.Error("bf16 loss equals fp32 loss bit for bit: nothing ran in bfloat16")
	}
	if rel := math.Abs(loss16-loss32) / loss32; rel > 5e-3 {
		t.Errorf("bf16 loss %.5f vs fp32 %.5f: relative difference %.2g, want < 5e-3", loss16, loss32, rel)
	}
	for _, p := range m.Layout() {
		a, b := g32[p.Offset:p.Offset+p.Numel()], g16[p.Offset:p.Offset+p.Numel()]
		var dot, na, nb float64
		for i := range a {
			dot += float64(a[i]) * float64(b[i])
			na += float64(a[i]) * float64(a[i])
			nb += float64(b[i]) * float64(b[i])
		}
		if na == 0 && nb == 0 {
			continue
		}
		cos := dot / math.Sqrt(na*nb)
		ratio := math.Sqrt(nb / na)
		if cos < 0.99 || math.Abs(ratio-1) > 0.05 {
			t.Errorf("%s: bf16 gradient cosine %.4f, norm ratio %.3f to fp32; want > 0.99 and within 5%%", p.Name, cos, ratio)
		}
	}
	// Eval runs in the compute dtype too and must agree with training's loss.
	sum, n, err := m.EvalLoss(b)
	if err != nil {
		t.Fatal(err)
	}
	if rel := math.Abs(sum/float64(n)-loss16) / loss16; rel > 1e-3 {
		t.Errorf("bf16 eval loss %.5f vs train loss %.5f", sum/float64(n), loss16)
	}
	// Back to fp32 gives fp32's loss exactly: the same computation again.
	if again, _ := gradsAt(t, m, FP32, b); again != loss32 {
		t.Errorf("fp32 loss after a bf16 step = %v, want %v", again, loss32)
	}
	if err := m.SetPrecision("fp16"); err == nil {
		t.Error("SetPrecision(fp16) succeeded, want an error")
	}
}

// TestBF16Trains overfits one batch in bf16: the float32 master weights
// take updates far smaller than bfloat16's resolution of the weights.
func TestBF16Trains(t *testing.T) {
	c := tinyConfig()
	c.InitializerRange = 0.02
	m := newTestModel(t, c, 5)
	if err := m.SetPrecision(BF16); err != nil {
		t.Fatal(err)
	}
	opt, err := NewAdamW(m, AdamWConfig{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8})
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	b := randomBatch(rand.New(rand.NewPCG(5, 6)), 4, 8, c.VocabSize)
	var last float64
	for range 300 {
		m.ZeroGrad()
		if last, _, err = m.TrainStep(b, 1); err != nil {
			t.Fatal(err)
		}
		if err := opt.Step(1e-2); err != nil {
			t.Fatal(err)
		}
	}
	if last >= 0.1 {
		t.Errorf("bf16 loss after 300 steps on one batch = %.4f, want < 0.1", last)
	}
}
