package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// run runs the dtrain CLI in-process, as main does, and returns what it
// printed.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &out
	err := runCLI(app, append([]string{"dtrain"}, args...))
	return out.String(), err
}

const python = "/usr/bin/python3"

// reference runs third_party/pytorch/gpt2_reference.py, an independent
// PyTorch implementation of HF's GPT2LMHeadModel.
func reference(t *testing.T, args ...string) string {
	t.Helper()
	script := filepath.Join("..", "..", "third_party", "pytorch", "gpt2_reference.py")
	cmd := exec.Command(python, append([]string{script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpt2_reference.py %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func requirePyTorch(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import torch").Run(); err != nil {
		t.Fatalf("%s cannot import torch (./build.sh installs python3-torch): %v", python, err)
	}
}

// TestEvalMatchesPyTorchReference loads checkpoints written by the PyTorch
// reference, in the variants HF checkpoints come in, and requires dtrain's
// loss to agree with the reference's float64 loss to 1e-4 relative.
func TestEvalMatchesPyTorchReference(t *testing.T) {
	requirePyTorch(t)
	dir := t.TempDir()
	shard := filepath.Join(dir, "tokens.bin")
	reference(t, "shard", "--out", shard, "--tokens", "3000", "--vocab", "211", "--seed", "3")
	cases := []struct {
		name     string
		ctx, seq string
		args     []string
	}{
		{"f32", "64", "48", []string{"--dtype", "F32"}},
		{"prefix+lm_head+attn.bias, f16", "64", "48", []string{"--dtype", "F16", "--prefix", "--with-attn-bias"}},
		{"bf16, exact gelu", "64", "48", []string{"--dtype", "BF16", "--activation", "gelu"}},
		// Longer than the attention's 256-row block: 3 blocks, the last ragged.
		{"f32, seq 600", "640", "600", []string{"--dtype", "F32"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ckpt := filepath.Join(dir, tc.name)
			args := append([]string{"make", "--out", ckpt, "--layers", "3", "--heads", "4", "--embd", "64",
				"--ctx", tc.ctx, "--vocab", "211", "--seed", string(rune('1' + i)), "--std", "0.1"}, tc.args...)
			reference(t, args...)
			var want, got evalResult
			if err := json.Unmarshal([]byte(reference(t, "loss", "--ckpt", ckpt, "--data", shard, "--seq-len", tc.seq, "--max-tokens", "2000")), &want); err != nil {
				t.Fatal(err)
			}
			out, err := run(t, "eval", "--checkpoint", ckpt, "--data", shard, "--seq-len", tc.seq, "--max-tokens", "2000", "--json")
			if err != nil {
				t.Fatalf("dtrain eval: %v\n%s", err, out)
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("dtrain eval printed %q: %v", out, err)
			}
			if got.Tokens != want.Tokens || got.Windows != want.Windows {
				t.Errorf("dtrain counted %d tokens in %d windows, reference %d in %d", got.Tokens, got.Windows, want.Tokens, want.Windows)
			}
			if rel := math.Abs(got.Loss-want.Loss) / want.Loss; rel > 1e-4 {
				t.Errorf("loss: dtrain %.8f, reference %.8f (relative difference %.2g)", got.Loss, want.Loss, rel)
			}
			t.Logf("loss dtrain %.8f reference %.8f", got.Loss, want.Loss)
		})
	}
}

// TestCkptInitInspectEval is the path a new user takes: create a
// checkpoint, inspect it, evaluate it, and get clear errors for mistakes.
func TestCkptInitInspectEval(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "tiny")
	out, err := run(t, "ckpt", "init", "--out", ckpt, "--layers", "2", "--heads", "2", "--embd", "32", "--ctx", "32", "--vocab", "300", "--seed", "4")
	if err != nil {
		t.Fatalf("ckpt init: %v\n%s", err, out)
	}
	out, err = run(t, "ckpt", "inspect", ckpt)
	if err != nil {
		t.Fatalf("ckpt inspect: %v\n%s", err, out)
	}
	for _, want := range []string{"h.1.mlp.c_proj.weight", "[128 32]", "valid       yes", "n_layer 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	if _, err := run(t, "ckpt", "init", "--out", ckpt, "--layers", "2", "--heads", "2", "--embd", "32", "--ctx", "32"); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("init over an existing checkpoint: %v", err)
	}

	// A corrupt checkpoint: cut model.safetensors short.
	weights := filepath.Join(ckpt, "model.safetensors")
	st, _ := os.Stat(weights)
	if err := os.Truncate(weights, st.Size()-100); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"ckpt", "inspect", ckpt},
		{"eval", "--checkpoint", ckpt, "--data", weights, "--seq-len", "8"},
	} {
		if _, err := run(t, args...); err == nil {
			t.Errorf("%v on a truncated checkpoint succeeded", args)
		}
	}

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"ckpt", "inspect", filepath.Join(dir, "nope")}, "no such file"},
		{[]string{"ckpt", "init", "--out", filepath.Join(dir, "x"), "--heads", "5", "--embd", "32"}, "multiple of n_head"},
		{[]string{"eval", "--checkpoint", ckpt, "--data", filepath.Join(dir, "missing.bin"), "--seq-len", "8"}, "no such file"},
		{[]string{"eval", "--checkpoint", ckpt, "--data", weights, "--seq-len", "0"}, "--seq-len"},
		{[]string{"ckpt", "init", "--bogus"}, "unknown flag --bogus"},
	}
	for _, b := range bad {
		_, err := run(t, b.args...)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%v: error %v, want one mentioning %q", b.args, err, b.want)
		}
	}
}
