package main

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
)

// TestBenchTrainBF16 runs the training benchmark in bf16 against the
// PyTorch script under torch.autocast: both train the same random-token
// model, so both start at the loss of a uniform guess, ln(vocab).
func TestBenchTrainBF16(t *testing.T) {
	args := []string{"bench", "train", "--layers", "1", "--heads", "2", "--embd", "32", "--ctx", "16", "--vocab", "512",
		"--batch", "2", "--steps", "2", "--warmup", "1", "--precision", "bf16", "--json"}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		args = append(args, "--no-baseline")
	}
	t.Chdir("../..") // where third_party/pytorch/bench_train.py is found
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var r trainBenchReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if r.Precision != "bf16" || r.Device != "cpu" || r.PeakGFLOPS <= 0 {
		t.Fatalf("report %+v", r)
	}
	uniform := math.Log(512)
	for _, b := range []*trainBench{&r.DTrain, r.Baseline} {
		if b == nil {
			continue
		}
		if b.TokensPerS <= 0 || len(b.Steps) != 2 || b.MFU <= 0 {
			t.Errorf("%s: %+v", b.Impl, *b)
		}
		if math.Abs(b.LossFirst-uniform) > 0.1 {
			t.Errorf("%s: first loss %.4f, want about ln(512) = %.4f", b.Impl, b.LossFirst, uniform)
		}
	}
	if r.Baseline != nil && math.Abs(r.Ratio-r.DTrain.TokensPerS/r.Baseline.TokensPerS) > 1e-9 {
		t.Errorf("ratio %v, want %v", r.Ratio, r.DTrain.TokensPerS/r.Baseline.TokensPerS)
	}
}

func TestBenchTrainBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--preset", "gpt5"}, "want gpt2 or gpt2-medium"},
		{[]string{"--precision", "fp8"}, "want auto, fp32 or bf16"},
		{[]string{"--device", "tpu"}, "want cpu, cuda or cuda:N"},
	} {
		out, err := run(t, append([]string{"bench", "train", "--no-baseline"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bench train %v: err %v (output %q), want %q", tc.args, err, out, tc.want)
		}
	}
}

// TestDeviceFromEnv checks that DTRAIN_DEVICE and DTRAIN_PRECISION (which
// the GPU image sets) reach every command that trains, and that the flags
// win over them.
func TestDeviceFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env, val string
		args     []string
		want     string
	}{
		{"DTRAIN_DEVICE", "tpu", []string{"train"}, `device: must be cpu, cuda or cuda:N (got "tpu")`},
		{"DTRAIN_DEVICE", "tpu", []string{"miner"}, `device: must be cpu, cuda or cuda:N (got "tpu")`},
		{"DTRAIN_PRECISION", "fp16", []string{"train"}, `precision: must be auto, fp32 or bf16 (got "fp16")`},
		{"DTRAIN_PRECISION", "fp16", []string{"miner", "--precision", "fp8"}, `(got "fp8")`},
		{"DTRAIN_DEVICE", "tpu", []string{"bench", "train", "--no-baseline"}, "want cpu, cuda or cuda:N"},
		{"DTRAIN_DEVICE", "cuda:0", []string{"bench", "train", "--no-baseline"}, "cuda"},
	} {
		t.Setenv(tc.env, tc.val)
		out, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s dtrain %v: err %v (output %q), want %q", tc.env, tc.val, tc.args, err, out, tc.want)
		}
		os.Unsetenv(tc.env)
	}
}
