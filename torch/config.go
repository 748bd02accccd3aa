package torch

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Config is a GPT-2 configuration with the keys of HuggingFace's
// GPT2Config, so config.json files move between dtrain and transformers.
type Config struct {
	NLayer             int      `json:"n_layer"`
	NHead              int      `json:"n_head"`
	NEmbd              int      `json:"n_embd"`
	NPositions         int      `json:"n_positions"`
	VocabSize          int      `json:"vocab_size"`
	NInner             *int     `json:"n_inner"` // MLP width; nil means 4·n_embd
	LayerNormEpsilon   float64  `json:"layer_norm_epsilon"`
	ActivationFunction string   `json:"activation_function"`
	EmbdPdrop          float64  `json:"embd_pdrop"`
	AttnPdrop          float64  `json:"attn_pdrop"`
	ResidPdrop         float64  `json:"resid_pdrop"`
	InitializerRange   float64  `json:"initializer_range"`
	BOSTokenID         int      `json:"bos_token_id"`
	EOSTokenID         int      `json:"eos_token_id"`
	TieWordEmbeddings  *bool    `json:"tie_word_embeddings,omitempty"`
	ModelType          string   `json:"model_type"`
	Architectures      []string `json:"architectures"`
	// Options that change HF's GPT-2 math in ways dtrain does not implement;
	// Validate rejects them rather than computing something else.
	ScaleAttnByInverseLayerIdx bool  `json:"scale_attn_by_inverse_layer_idx"`
	ReorderAndUpcastAttn       bool  `json:"reorder_and_upcast_attn"`
	ScaleAttnWeights           *bool `json:"scale_attn_weights,omitempty"`
}

// GPT2Vocab is the size of GPT-2's BPE vocabulary.
const GPT2Vocab = 50257

// NewConfig returns a GPT-2 configuration of the given size with GPT-2's
// defaults for everything else.
func NewConfig(layers, heads, embd, ctx, vocab int) Config {
	return Config{
		NLayer: layers, NHead: heads, NEmbd: embd, NPositions: ctx, VocabSize: vocab,
		LayerNormEpsilon: 1e-5, ActivationFunction: "gelu_new",
		EmbdPdrop: 0.1, AttnPdrop: 0.1, ResidPdrop: 0.1, InitializerRange: 0.02,
		BOSTokenID: GPT2Vocab - 1, EOSTokenID: GPT2Vocab - 1,
		ModelType: "gpt2", Architectures: []string{"GPT2LMHeadModel"},
	}
}

// Inner is the MLP width.
func (c Config) Inner() int {
	if c.NInner != nil && *c.NInner > 0 {
		return *c.NInner
	}
	return 4 * c.NEmbd
}

// Validate reports the first impossible value, naming its config.json key.
func (c Config) Validate() error {
	pos := func(key string, v int) error {
		if v < 1 {
			return fmt.Errorf("config: %s must be >= 1, got %d", key, v)
		}
		return nil
	}
	for _, kv := range []struct {
		key string
		v   int
	}{{"n_layer", c.NLayer}, {"n_head", c.NHead}, {"n_embd", c.NEmbd}, {"n_positions", c.NPositions}, {"vocab_size", c.VocabSize}} {
		if err := pos(kv.key, kv.v); err != nil {
			return err
		}
	}
	if c.NEmbd%c.NHead != 0 {
		return fmt.Errorf("config: n_embd (%d) must be a multiple of n_head (%d)", c.NEmbd, c.NHead)
	}
	if c.NInner != nil && *c.NInner < 0 {
		return fmt.Errorf("config: n_inner must be >= 0 or null, got %d", *c.NInner)
	}
	if !(c.LayerNormEpsilon > 0) {
		return fmt.Errorf("config: layer_norm_epsilon must be > 0, got %g", c.LayerNormEpsilon)
	}
	if _, err := c.geluTanh(); err != nil {
		return err
	}
	for _, kv := range []struct {
		key string
		v   float64
	}{{"embd_pdrop", c.EmbdPdrop}, {"attn_pdrop", c.AttnPdrop}, {"resid_pdrop", c.ResidPdrop}} {
		if !(kv.v >= 0 && kv.v < 1) {
			return fmt.Errorf("config: %s must be in [0, 1), got %g", kv.key, kv.v)
		}
	}
	if !(c.InitializerRange >= 0) {
		return fmt.Errorf("config: initializer_range must be >= 0, got %g", c.InitializerRange)
	}
	if c.TieWordEmbeddings != nil && !*c.TieWordEmbeddings {
		return errors.New("config: tie_word_embeddings=false is not supported: GPT-2's lm_head is wte")
	}
	if c.ScaleAttnByInverseLayerIdx || c.ReorderAndUpcastAttn || (c.ScaleAttnWeights != nil && !*c.ScaleAttnWeights) {
		return errors.New("config: scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn and scale_attn_weights=false are not supported")
	}
	return nil
}

// geluTanh maps HF's activation_function to the GELU variant.
func (c Config) geluTanh() (bool, error) {
	switch c.ActivationFunction {
	case "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "":
		return true, nil
	case "gelu":
		return false, nil
	}
	return false, fmt.Errorf("config: activation_function %q is not supported (gelu_new, gelu_pytorch_tanh or gelu)", c.ActivationFunction)
}

// rawConfig holds the keys that older checkpoints spell differently.
type rawConfig struct {
	Config
	NCtx *int `json:"n_ctx"`
}

// ParseConfig decodes a config.json. Keys dtrain does not use are ignored,
// as transformers does; missing keys take GPT-2's defaults.
func ParseConfig(data []byte) (Config, error) {
	raw := rawConfig{Config: NewConfig(0, 0, 0, 0, 0)}
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	c := raw.Config
	if c.NPositions == 0 && raw.NCtx != nil {
		c.NPositions = *raw.NCtx
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// LoadConfig reads dir/config.json.
func LoadConfig(dir string) (Config, error) {
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
	}
	return c, nil
}

// SaveConfig writes dir/config.json atomically, with the keys transformers
// expects of a GPT-2 checkpoint.
func SaveConfig(dir string, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	out := map[string]any{}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return err
	}
	out["n_ctx"] = c.NPositions
	out["model_type"] = "gpt2"
	out["architectures"] = []string{"GPT2LMHeadModel"}
	out["tie_word_embeddings"] = true
	out["torch_dtype"] = "float32"
	out["summary_type"] = "cls_index"
	out["use_cache"] = true
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, "config.json"), append(data, '\n'))
}
