package torch

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Files of a checkpoint directory. config.json and model.safetensors are
// exactly what HF transformers reads for a GPT-2; the others sit beside them.
const (
	ConfigFile       = "config.json"
	WeightsFile      = "model.safetensors"
	OptimizerFile    = "optimizer.safetensors"
	TrainerStateFile = "trainer_state.json"
)

// hfPrefix is the prefix GPT2LMHeadModel's state dict puts on body tensors.
const hfPrefix = "transformer."

// ignoredTensor reports names that HF checkpoints may carry but that hold
// no parameters: causal-mask buffers, and lm_head, which GPT-2 ties to wte.
func ignoredTensor(name string) bool {
	return strings.HasSuffix(name, ".attn.bias") || strings.HasSuffix(name, ".attn.masked_bias") ||
		name == "lm_head.weight"
}

// ReadWeights reads a safetensors file of GPT-2 weights for cfg into a flat
// buffer in Layout order. Names may carry the "transformer." prefix;
// tensors stored as F32, F16, BF16 or F64 are converted to float32. Missing
// tensors, unknown tensors, shapes that disagree with cfg and non-finite
// values are errors that name the tensor.
func ReadWeights(path string, cfg Config) ([]float32, error) {
	f, err := OpenSafetensors(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	layout := Layout(cfg)
	want := make(map[string]Param, len(layout))
	for _, p := range layout {
		want[p.Name] = p
	}
	stored := map[string]TensorInfo{}
	var extra []string
	for _, t := range f.Header().Tensors {
		name := strings.TrimPrefix(t.Name, hfPrefix)
		if ignoredTensor(name) {
			continue
		}
		if _, ok := want[name]; !ok {
			extra = append(extra, t.Name)
			continue
		}
		if prev, dup := stored[name]; dup {
			return nil, fmt.Errorf("%s: tensor %s stored twice (%s and %s)", path, name, prev.Name, t.Name)
		}
		stored[name] = t
	}
	if len(extra) > 0 {
		return nil, fmt.Errorf("%s: %d tensors that a GPT-2 of this config does not have: %s", path, len(extra), listNames(extra))
	}
	var missing []string
	for _, p := range layout {
		if _, ok := stored[p.Name]; !ok {
			missing = append(missing, p.Name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: %d tensors missing: %s", path, len(missing), listNames(missing))
	}
	flat := make([]float32, NumParams(cfg))
	for _, p := range layout {
		t := stored[p.Name]
		if !slices.Equal(t.Shape, p.Shape) {
			return nil, fmt.Errorf("%s: tensor %s has shape %v, config.json implies %v", path, t.Name, t.Shape, p.Shape)
		}
		dst := flat[p.Offset : p.Offset+p.Numel()]
		if err := f.ReadFloat32(t.Name, dst); err != nil {
			return nil, err
		}
		if i := firstNonFinite(dst); i >= 0 {
			return nil, fmt.Errorf("%s: tensor %s holds %v at element %d", path, t.Name, dst[i], i)
		}
	}
	return flat, nil
}

func listNames(names []string) string {
	if len(names) > 8 {
		return strings.Join(names[:8], ", ") + fmt.Sprintf(", ... (%d more)", len(names)-8)
	}
	return strings.Join(names, ", ")
}

// WriteWeights writes a flat buffer in Layout order as HF GPT-2 safetensors
// (F32, names without prefix, as the hub's gpt2 repository stores them).
func WriteWeights(path string, cfg Config, flat []float32) error {
	if int64(len(flat)) != NumParams(cfg) {
		return fmt.Errorf("write weights: %d values for a model of %d", len(flat), NumParams(cfg))
	}
	return WriteSafetensors(path, namedTensors(cfg, flat, ""), map[string]string{"format": "pt"})
}

func namedTensors(cfg Config, flat []float32, prefix string) []NamedTensor {
	layout := Layout(cfg)
	ts := make([]NamedTensor, len(layout))
	for i, p := range layout {
		ts[i] = NamedTensor{Name: prefix + p.Name, Shape: p.Shape, Data: flat[p.Offset : p.Offset+p.Numel()]}
	}
	return ts
}

// SaveModel writes m as an HF GPT-2 checkpoint directory (config.json and
// model.safetensors), creating dir if needed. Each file is replaced
// atomically.
func SaveModel(dir string, m *Model) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	flat := make([]float32, m.NumParams())
	if err := m.Params(flat); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if err := WriteWeights(filepath.Join(dir, WeightsFile), m.Config(), flat); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if err := SaveConfig(dir, m.Config()); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	return nil
}

// LoadModel reads an HF GPT-2 checkpoint directory onto dev.
func LoadModel(dir string, dev Device) (*Model, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("load model: %s is not a checkpoint directory", dir)
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	flat, err := ReadWeights(filepath.Join(dir, WeightsFile), cfg)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	m, err := NewModel(cfg, dev, 0)
	if err != nil {
		return nil, err
	}
	if err := m.SetParams(flat); err != nil {
		m.Close()
		return nil, fmt.Errorf("load model: %w", err)
	}
	return m, nil
}

// SaveOptimizer writes AdamW's state beside the weights: per parameter
// "exp_avg.NAME" and "exp_avg_sq.NAME", with step and hyperparameters in the
// safetensors metadata.
func SaveOptimizer(path string, o *AdamW) error {
	s, err := o.State()
	if err != nil {
		return fmt.Errorf("save optimizer: %w", err)
	}
	cfg := o.model.Config()
	ts := append(namedTensors(cfg, s.ExpAvg, "exp_avg."), namedTensors(cfg, s.ExpAvgSq, "exp_avg_sq.")...)
	c := o.Config()
	meta := map[string]string{
		"format": "pt", "optimizer": "adamw", "step": strconv.FormatInt(s.Step, 10),
		"beta1": fmtFloat(c.Beta1), "beta2": fmtFloat(c.Beta2), "eps": fmtFloat(c.Eps), "weight_decay": fmtFloat(c.WeightDecay),
	}
	return WriteSafetensors(path, ts, meta)
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// LoadOptimizer restores AdamW's state written by SaveOptimizer.
func LoadOptimizer(path string, o *AdamW) error {
	f, err := OpenSafetensors(path)
	if err != nil {
		return fmt.Errorf("load optimizer: %w", err)
	}
	defer f.Close()
	meta := f.Header().Metadata
	if meta["optimizer"] != "adamw" {
		return fmt.Errorf("load optimizer: %s holds %q state, want adamw", path, meta["optimizer"])
	}
	step, err := strconv.ParseInt(meta["step"], 10, 64)
	if err != nil {
		return fmt.Errorf("load optimizer: %s: bad step %q", path, meta["step"])
	}
	cfg := o.model.Config()
	n := NumParams(cfg)
	s := AdamWState{ExpAvg: make([]float32, n), ExpAvgSq: make([]float32, n), Step: step}
	if got, want := len(f.Header().Tensors), 2*len(Layout(cfg)); got != want {
		return fmt.Errorf("load optimizer: %s has %d tensors, want %d", path, got, want)
	}
	for _, part := range []struct {
		prefix string
		dst    []float32
	}{{"exp_avg.", s.ExpAvg}, {"exp_avg_sq.", s.ExpAvgSq}} {
		for _, p := range Layout(cfg) {
			t, ok := f.Header().Lookup(part.prefix + p.Name)
			if !ok {
				return fmt.Errorf("load optimizer: %s: tensor %s missing", path, part.prefix+p.Name)
			}
			if !slices.Equal(t.Shape, p.Shape) {
				return fmt.Errorf("load optimizer: %s: tensor %s has shape %v, want %v", path, t.Name, t.Shape, p.Shape)
			}
			if err := f.ReadFloat32(t.Name, part.dst[p.Offset:p.Offset+p.Numel()]); err != nil {
				return fmt.Errorf("load optimizer: %w", err)
			}
		}
	}
	if err := o.SetState(s); err != nil {
		return fmt.Errorf("load optimizer: %s: %w", path, err)
	}
	return nil
}

// SaveTrainerState writes v as dir/trainer_state.json, atomically.
func SaveTrainerState(dir string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("save trainer state: %w", err)
	}
	return WriteFileAtomic(filepath.Join(dir, TrainerStateFile), append(data, '\n'))
}

// LoadTrainerState decodes dir/trainer_state.json into v. A missing file
// returns an error that wraps os.ErrNotExist.
func LoadTrainerState(dir string, v any) error {
	data, err := os.ReadFile(filepath.Join(dir, TrainerStateFile))
	if err != nil {
		return fmt.Errorf("load trainer state: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("load trainer state: %s: %w", filepath.Join(dir, TrainerStateFile), err)
	}
	return nil
}
