package config

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// problems returns the keys Validate complains about, in order.
func problems(t *testing.T, err error) ([]string, []string) {
	t.Helper()
	var keys, msgs []string
	for _, fe := range fieldErrors(err) {
		keys = append(keys, fe.Key)
		msgs = append(msgs, fe.Error())
	}
	return keys, msgs
}

func TestDefaultTrainIsValid(t *testing.T) {
	if err := DefaultTrain().Validate(); err != nil {
		t.Fatalf("DefaultTrain().Validate() = %v", err)
	}
}

// TestValidate changes one thing about the defaults per case and requires
// exactly the named keys to be reported, with the key first in the message
// and the given text in it.
func TestValidate(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name string
		edit func(*Train)
		keys []string // nil = valid
		text string   // in the first message
	}{
		{"run_id empty", func(c *Train) { c.RunID = "" }, []string{"run_id"}, `must not be empty (got "")`},
		{"run_id 64 bytes", func(c *Train) { c.RunID = strings.Repeat("a", 64) }, nil, ""},
		{"run_id 65 bytes", func(c *Train) { c.RunID = strings.Repeat("a", 65) }, []string{"run_id"}, "at most 64"},
		{"run_id slash", func(c *Train) { c.RunID = "a/b" }, []string{"run_id"}, `(got "a/b")`},
		{"run_id space", func(c *Train) { c.RunID = "my run" }, []string{"run_id"}, "letters, digits"},
		{"run_id all safe runes", func(c *Train) { c.RunID = "Run-1_v2.0" }, nil, ""},
		{"out_dir empty", func(c *Train) { c.OutDir = "" }, []string{"out_dir"}, "must not be empty"},
		{"out_dir blank", func(c *Train) { c.OutDir = "  " }, []string{"out_dir"}, "must not be empty"},
		{"device gpu", func(c *Train) { c.Device = "gpu" }, []string{"device"}, `cpu, cuda or cuda:N (got "gpu")`},
		{"device cuda:", func(c *Train) { c.Device = "cuda:" }, []string{"device"}, "cuda:N"},
		{"device cuda:x", func(c *Train) { c.Device = "cuda:x" }, []string{"device"}, "cuda:N"},
		{"device cuda:-1", func(c *Train) { c.Device = "cuda:-1" }, []string{"device"}, "cuda:N"},
		{"device empty", func(c *Train) { c.Device = "" }, []string{"device"}, "cuda:N"},
		{"device cuda", func(c *Train) { c.Device = "cuda" }, nil, ""},
		{"device cuda:3", func(c *Train) { c.Device = "cuda:3" }, nil, ""},
		{"device CPU", func(c *Train) { c.Device = "CPU" }, nil, ""},
		{"precision fp16", func(c *Train) { c.Precision = "fp16" }, []string{"precision"}, `auto, fp32 or bf16 (got "fp16")`},
		{"precision bf16", func(c *Train) { c.Precision = "bf16" }, nil, ""},
		{"precision FP32", func(c *Train) { c.Precision = "FP32" }, nil, ""},
		{"threads -1", func(c *Train) { c.Threads = -1 }, []string{"threads"}, "must be >= 0 (got -1)"},
		{"threads 8", func(c *Train) { c.Threads = 8 }, nil, ""},

		{"n_layer 0", func(c *Train) { c.Model.NLayer = 0 }, []string{"model.n_layer"}, ">= 1 (got 0)"},
		{"n_head 0", func(c *Train) { c.Model.NHead = 0 }, []string{"model.n_head"}, ">= 1"},
		{"n_embd 0", func(c *Train) { c.Model.NEmbd = 0 }, []string{"model.n_embd"}, ">= 1"},
		{"n_positions 0", func(c *Train) { c.Model.NPositions = 0 }, []string{"model.n_positions"}, ">= 1"},
		{"vocab_size 0", func(c *Train) { c.Model.VocabSize = 0 }, []string{"model.vocab_size"}, ">= 1"},
		{"vocab_size small", func(c *Train) { c.Model.VocabSize = 211 }, nil, ""},
		{"n_embd not multiple of n_head", func(c *Train) { c.Model.NHead = 3 }, []string{"model.n_embd"}, "multiple of model.n_head = 3 (got 256)"},
		{"sizes ignored with init", func(c *Train) { c.Model.Init = "gpt2"; c.Model.NLayer, c.Model.NHead = 0, 0 }, nil, ""},
		{"dropout 1", func(c *Train) { c.Model.Dropout = 1 }, []string{"model.dropout"}, "[0, 1) (got 1.0)"},
		{"dropout negative", func(c *Train) { c.Model.Dropout = -0.1 }, []string{"model.dropout"}, "[0, 1)"},
		{"dropout NaN", func(c *Train) { c.Model.Dropout = nan }, []string{"model.dropout"}, "finite number (got nan)"},
		{"dropout with init", func(c *Train) { c.Model.Init = "gpt2"; c.Model.Dropout = 1 }, []string{"model.dropout"}, "[0, 1)"},

		{"val_fraction 0", func(c *Train) { c.Data.ValFraction = 0 }, []string{"data.val_fraction"}, "(0, 0.5] when data.val is empty"},
		{"val_fraction 0 with val", func(c *Train) { c.Data.Val = "val.bin"; c.Data.ValFraction = 0 }, nil, ""},
		{"val_fraction 0.5", func(c *Train) { c.Data.ValFraction = 0.5 }, nil, ""},
		{"val_fraction 0.6", func(c *Train) { c.Data.ValFraction = 0.6 }, []string{"data.val_fraction"}, "(got 0.6)"},
		{"val_fraction 0.6 with val", func(c *Train) { c.Data.Val = "v"; c.Data.ValFraction = 0.6 }, []string{"data.val_fraction"}, "[0, 0.5]"},
		{"val_fraction Inf", func(c *Train) { c.Data.ValFraction = inf }, []string{"data.val_fraction"}, "finite number (got inf)"},
		{"seq_len 0", func(c *Train) { c.Data.SeqLen = 0 }, []string{"data.seq_len"}, ">= 1"},
		{"seq_len > n_positions", func(c *Train) { c.Data.SeqLen = 512; c.Loop.BatchTokens = 16384 }, []string{"data.seq_len"}, "at most model.n_positions = 256 (got 512)"},
		{"seq_len > n_positions with init", func(c *Train) { c.Model.Init = "gpt2"; c.Data.SeqLen = 512; c.Loop.BatchTokens = 16384 }, nil, ""},

		{"lr 0", func(c *Train) { c.Optim.LR = 0; c.Optim.MinLR = 0 }, []string{"optim.lr"}, "optim.lr: must be > 0 (got 0.0)"},
		{"lr NaN", func(c *Train) { c.Optim.LR = nan }, []string{"optim.lr"}, "finite"},
		{"min_lr negative", func(c *Train) { c.Optim.MinLR = -1e-4 }, []string{"optim.min_lr"}, ">= 0 (got -0.0001)"},
		{"min_lr > lr", func(c *Train) { c.Optim.MinLR = 0.01 }, []string{"optim.min_lr"}, "at most optim.lr = 0.002 (got 0.01)"},
		{"min_lr = lr", func(c *Train) { c.Optim.MinLR = c.Optim.LR }, nil, ""},
		{"warmup negative", func(c *Train) { c.Optim.WarmupSteps = -1 }, []string{"optim.warmup_steps"}, ">= 0"},
		{"warmup = max_steps", func(c *Train) { c.Optim.WarmupSteps = c.Loop.MaxSteps }, []string{"optim.warmup_steps"}, "less than train.max_steps = 250"},
		{"warmup 0", func(c *Train) { c.Optim.WarmupSteps = 0 }, nil, ""},
		{"weight_decay negative", func(c *Train) { c.Optim.WeightDecay = -0.1 }, []string{"optim.weight_decay"}, ">= 0"},
		{"beta1 1", func(c *Train) { c.Optim.Beta1 = 1 }, []string{"optim.beta1"}, "[0, 1)"},
		{"beta2 negative", func(c *Train) { c.Optim.Beta2 = -0.5 }, []string{"optim.beta2"}, "[0, 1)"},
		{"beta2 -Inf", func(c *Train) { c.Optim.Beta2 = math.Inf(-1) }, []string{"optim.beta2"}, "finite number (got -inf)"},
		{"eps 0", func(c *Train) { c.Optim.Eps = 0 }, []string{"optim.eps"}, "> 0"},
		{"grad_clip negative", func(c *Train) { c.Optim.GradClip = -1 }, []string{"optim.grad_clip"}, ">= 0"},
		{"grad_clip 0", func(c *Train) { c.Optim.GradClip = 0 }, nil, ""},

		{"max_steps 0", func(c *Train) { c.Loop.MaxSteps = 0 }, []string{"train.max_steps"}, ">= 1"},
		{"max_minutes negative", func(c *Train) { c.Loop.MaxMinutes = -1 }, []string{"train.max_minutes"}, ">= 0"},
		{"max_minutes NaN", func(c *Train) { c.Loop.MaxMinutes = nan }, []string{"train.max_minutes"}, "finite"},
		{"micro_batch 0", func(c *Train) { c.Loop.MicroBatch = 0 }, []string{"train.micro_batch"}, ">= 1"},
		{"micro_batch*seq_len overflows", func(c *Train) { c.Loop.MicroBatch = math.MaxInt / 2 }, []string{"train.micro_batch"}, "overflows"},
		{"batch_tokens too small", func(c *Train) { c.Loop.BatchTokens = 1000 }, []string{"train.batch_tokens"}, "at least micro_batch*seq_len = 2048 (got 1000)"},
		{"batch_tokens not a multiple", func(c *Train) { c.Loop.BatchTokens = 9000 }, []string{"train.batch_tokens"}, "multiple of micro_batch*seq_len = 2048, e.g. 8192 or 10240 (got 9000)"},
		{"batch_tokens one micro-batch", func(c *Train) { c.Loop.BatchTokens = 2048 }, nil, ""},
		{"eval_every negative", func(c *Train) { c.Loop.EvalEvery = -1 }, []string{"train.eval_every"}, ">= 0"},
		{"eval_every 0", func(c *Train) { c.Loop.EvalEvery = 0 }, nil, ""},
		{"eval_tokens < seq_len", func(c *Train) { c.Loop.EvalTokens = 127 }, []string{"train.eval_tokens"}, ">= 128 (got 127)"},
		{"checkpoint_every negative", func(c *Train) { c.Loop.CheckpointEvery = -5 }, []string{"train.checkpoint_every"}, ">= 0"},
		{"keep_checkpoints 0", func(c *Train) { c.Loop.KeepCheckpoints = 0 }, []string{"train.keep_checkpoints"}, ">= 1"},
		{"log_every 0", func(c *Train) { c.Loop.LogEvery = 0 }, []string{"train.log_every"}, ">= 1"},

		{"addr no port", func(c *Train) { c.Metrics.Addr = "localhost" }, []string{"metrics.addr"}, `host:port, e.g. 127.0.0.1:9100 (got "localhost")`},
		{"addr bad port", func(c *Train) { c.Metrics.Addr = ":99999" }, []string{"metrics.addr"}, "0..65535"},
		{"addr named port", func(c *Train) { c.Metrics.Addr = "localhost:http" }, []string{"metrics.addr"}, "0..65535"},
		{"addr ok", func(c *Train) { c.Metrics.Addr = "127.0.0.1:9100" }, nil, ""},
		{"addr ipv6 any port", func(c *Train) { c.Metrics.Addr = "[::1]:0" }, nil, ""},

		{"two problems", func(c *Train) { c.Loop.LogEvery = 0; c.Device = "tpu" },
			[]string{"device", "train.log_every"}, "device"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultTrain()
			tc.edit(&c)
			err := c.Validate()
			keys, msgs := problems(t, err)
			if !slices.Equal(keys, tc.keys) {
				t.Fatalf("Validate() reported keys %q, want %q\n%v", keys, tc.keys, err)
			}
			if tc.keys == nil {
				return
			}
			if !strings.HasPrefix(msgs[0], tc.keys[0]+": ") || !strings.Contains(msgs[0], tc.text) {
				t.Errorf("message %q: want it to start with %q and contain %q", msgs[0], tc.keys[0]+": ", tc.text)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Key != tc.keys[0] {
				t.Errorf("errors.As(*FieldError) = %v, want key %s", fe, tc.keys[0])
			}
		})
	}
}

func TestFieldErrorFormat(t *testing.T) {
	cases := []struct {
		e    FieldError
		want string
	}{
		{FieldError{Key: "optim.lr", Reason: "must be > 0", Got: "0.0"}, "optim.lr: must be > 0 (got 0.0)"},
		{FieldError{File: "a.toml", Key: "k", Reason: "r"}, "a.toml: k: r"},
		{FieldError{File: "a.toml", Line: 7, Key: "k", Reason: "r", Got: `"x"`}, `a.toml:7: k: r (got "x")`},
	}
	for _, tc := range cases {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestLongValuesAreShortened(t *testing.T) {
	c := DefaultTrain()
	c.RunID = strings.Repeat("x", 10000)
	err := c.Validate()
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("Validate() = %d-byte message, want a short one: %.300v", len(err.Error()), err)
	}
}

func TestAccumSteps(t *testing.T) {
	cases := []struct {
		batch, micro, seq, want int
	}{
		{8192, 16, 128, 4},
		{2048, 16, 128, 1},
		{1024, 2, 64, 8},
		{8192, 0, 128, 0},
		{8192, 16, 0, 0},
		{8192, math.MaxInt, 2, 0},
	}
	for _, tc := range cases {
		c := DefaultTrain()
		c.Loop.BatchTokens, c.Loop.MicroBatch, c.Data.SeqLen = tc.batch, tc.micro, tc.seq
		if got := c.AccumSteps(); got != tc.want {
			t.Errorf("AccumSteps(batch %d, micro %d, seq %d) = %d, want %d", tc.batch, tc.micro, tc.seq, got, tc.want)
		}
	}
}
