package torch

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeCheckpoint writes config.json and a model.safetensors holding the
// given tensors, for tests that build checkpoints by hand.
func writeCheckpoint(t *testing.T, c Config, ts []NamedTensor) string {
	t.Helper()
	dir := t.TempDir()
	if err := SaveConfig(dir, c); err != nil {
		t.Fatal(err)
	}
	if err := WriteSafetensors(filepath.Join(dir, WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadModelRejectsBadCheckpoints(t *testing.T) {
	c := tinyConfig()
	flat := make([]float32, NumParams(c))
	good := func() []NamedTensor { return namedTensors(c, flat, "") }
	drop := func(name string) []NamedTensor {
		var out []NamedTensor
		for _, nt := range good() {
			if nt.Name != name {
				out = append(out, nt)
			}
		}
		return out
	}
	cases := []struct {
		name string
		ts   []NamedTensor
		want string
	}{
		{"missing tensor", drop("h.1.ln_2.bias"), "missing: h.1.ln_2.bias"},
		{"extra tensor", append(good(), NamedTensor{Name: "h.9.ln_1.weight", Shape: []int64{16}, Data: make([]float32, 16)}), "does not have: h.9.ln_1.weight"},
		{"wrong shape", append(drop("wpe.weight"), NamedTensor{Name: "wpe.weight", Shape: []int64{9, 16}, Data: make([]float32, 9*16)}), "wpe.weight has shape [9 16], config.json implies [8 16]"},
		{"stored twice", append(good(), NamedTensor{Name: "transformer.ln_f.bias", Shape: []int64{16}, Data: make([]float32, 16)}), "stored twice"},
		{"nan", func() []NamedTensor {
			ts := good()
			nan := make([]float32, len(ts[len(ts)-1].Data))
			nan[3] = float32(math.NaN())
			ts[len(ts)-1].Data = nan
			return ts
		}(), "ln_f.bias holds NaN at element 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeCheckpoint(t, c, tc.ts)
			m, err := LoadModel(dir, CPU)
			if err == nil {
				m.Close()
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestLoadModelFileProblems(t *testing.T) {
	c := tinyConfig()
	m := newTestModel(t, c, 1)
	dir := t.TempDir()
	if err := SaveModel(dir, m); err != nil {
		t.Fatal(err)
	}
	weights := filepath.Join(dir, WeightsFile)
	st, _ := os.Stat(weights)

	if err := os.Truncate(weights, st.Size()-4); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadModel(dir, CPU); err == nil {
		t.Error("loaded a truncated model.safetensors")
	}
	if err := os.WriteFile(weights, []byte{0xff, 0xff, 0, 0, 0, 0, 0, 0, '{'}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadModel(dir, CPU); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("header length past the end of the file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"n_layer": 2, "n_head": 3, "n_embd": 16, "n_positions": 8, "vocab_size": 23}`), 0o644)
	if _, err := LoadModel(dir, CPU); err == nil || !strings.Contains(err.Error(), "multiple of n_head") {
		t.Errorf("impossible config: %v", err)
	}
	os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"n_layer": 2,`), 0o644)
	if _, err := LoadModel(dir, CPU); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("malformed config.json: %v", err)
	}
	if _, err := LoadModel(filepath.Join(dir, "nope"), CPU); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing directory: %v", err)
	}
}

func TestParseConfigHF(t *testing.T) {
	// The config.json of HF's gpt2 repository, abridged: n_ctx, unknown
	// keys and task_specific_params must not disturb parsing.
	js := `{"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
	"bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
	"layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
	"n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": null,
	"task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}}, "vocab_size": 50257}`
	c, err := ParseConfig([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	// Exact: "1e-05" parses to the float64 nearest 1e-5, as the literal does.
	if c.NLayer != 12 || c.NEmbd != 768 || c.NPositions != 1024 || c.Inner() != 3072 || c.LayerNormEpsilon != 1e-5 {
		t.Fatalf("parsed %+v", c)
	}
	if got := NumParams(c); got != 124439808 {
		t.Errorf("GPT-2 small has %d parameters here, want 124439808 (HF's count)", got)
	}
	for js, want := range map[string]string{
		`{"n_layer": 2, "n_head": 2, "n_embd": 16, "n_positions": 8, "vocab_size": 10, "activation_function": "relu"}`: "activation_function",
		`{"n_layer": 0, "n_head": 2, "n_embd": 16, "n_positions": 8, "vocab_size": 10}`:                                "n_layer",
		`{"n_layer": 2, "n_head": 2, "n_embd": 16, "n_positions": 8, "vocab_size": 10, "resid_pdrop": 1.5}`:            "resid_pdrop",
		`{"n_layer": 2, "n_head": 2, "n_embd": "16", "n_positions": 8, "vocab_size": 10}`:                              "n_embd",
	} {
		if _, err := ParseConfig([]byte(js)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %s", js, err, want)
		}
	}
}
