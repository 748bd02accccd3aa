package config

import "strings"

// Train is the configuration of `dtrain train`: one TOML file, sections
// [model], [data], [optim], [train] and [metrics]. Every field has a
// default (DefaultTrain) and a `doc` tag that `dtrain config init` prints
// above it.
type Train struct {
	RunID     string `toml:"run_id" doc:"names the run; with seed, fixes the data order and each peer's lanes of it (see node/data Order, Lane)"`
	Seed      uint64 `toml:"seed" doc:"seeds weight init, dropout and the data order"`
	OutDir    string `toml:"out_dir" doc:"checkpoints (out_dir/checkpoints/step_NNNNNNNN) and metrics.jsonl go here"`
	Device    string `toml:"device" doc:"cpu, cuda or cuda:N"`
	Precision string `toml:"precision" doc:"matmul and attention dtype: fp32, bf16 (mixed precision over float32 weights) or auto (bf16 on CUDA and on CPUs with AMX or AVX512-BF16, else fp32)"`
	Threads   int    `toml:"threads" doc:"CPU threads for libtorch; 0 = all cores"`

	Model   Model   `toml:"model"`
	Data    Data    `toml:"data"`
	Optim   Optim   `toml:"optim"`
	Loop    Loop    `toml:"train"`
	Metrics Metrics `toml:"metrics"`
	Wandb   Wandb   `toml:"wandb"`
}

// Wandb is where a role logs to Weights & Biases. The API key comes from
// $WANDB_API_KEY only, never from a file.
type Wandb struct {
	Project string `toml:"project" doc:"the W&B project; logging is on when $WANDB_API_KEY is set (the key is read from the environment only)"`
	Entity  string `toml:"entity" doc:"the W&B user or team; empty = the key's default entity"`
	BaseURL string `toml:"base_url" doc:"W&B's API (empty = https://api.wandb.ai); the key goes to another host only when $WANDB_BASE_URL names it too"`
}

func (w Wandb) validate(c *check) {
	if p := w.Project; p == "" || strings.ContainsAny(p, "/ \t") {
		c.fail("wandb.project", "must be a W&B project name", p)
	}
}

// Model says which GPT-2 to train: a fresh one of the given size, or the
// weights of an HF checkpoint directory (whose config.json then wins).
type Model struct {
	Init       string  `toml:"init" doc:"HF GPT-2 checkpoint directory to start from; empty = fresh init with the sizes below"`
	NLayer     int     `toml:"n_layer" doc:"transformer blocks"`
	NHead      int     `toml:"n_head" doc:"attention heads; must divide n_embd"`
	NEmbd      int     `toml:"n_embd" doc:"width of the residual stream"`
	NPositions int     `toml:"n_positions" doc:"longest sequence the model can see"`
	VocabSize  int     `toml:"vocab_size" doc:"50257 for GPT-2's tokenizer"`
	Dropout    float64 `toml:"dropout" doc:"dropout on embeddings, attention and MLP outputs, in [0, 1)"`
}

// Data says what to train and evaluate on.
type Data struct {
	Train       string  `toml:"train" doc:"file or directory: .txt, .jsonl, .parquet or llm.c .bin shards; empty = the built-in corpus (Go standard library sources)"`
	Val         string  `toml:"val" doc:"held-out data in the same formats; empty = the val_fraction held out of train"`
	ValFraction float64 `toml:"val_fraction" doc:"fraction of documents held out for evaluation when val is empty, in (0, 0.5]"`
	SeqLen      int     `toml:"seq_len" doc:"tokens per training sequence; at most model.n_positions"`
	CacheDir    string  `toml:"cache_dir" doc:"where tokenized shards of text inputs are kept; empty = $XDG_CACHE_HOME/dtrain/data (~/.cache/dtrain/data)"`
}

// Optim is AdamW with a cosine learning-rate schedule and linear warmup.
type Optim struct {
	LR          float64 `toml:"lr" doc:"peak learning rate, reached after warmup_steps"`
	MinLR       float64 `toml:"min_lr" doc:"learning rate at the end of the cosine decay"`
	WarmupSteps int     `toml:"warmup_steps" doc:"optimizer steps of linear warmup from 0 to lr"`
	WeightDecay float64 `toml:"weight_decay" doc:"AdamW decoupled weight decay, on 2-D weights only"`
	Beta1       float64 `toml:"beta1" doc:"AdamW first-moment decay, in [0, 1)"`
	Beta2       float64 `toml:"beta2" doc:"AdamW second-moment decay, in [0, 1)"`
	Eps         float64 `toml:"eps" doc:"AdamW denominator epsilon"`
	GradClip    float64 `toml:"grad_clip" doc:"clip the global gradient norm to this; 0 = no clipping"`
}

// Loop is the training loop: how big a step is, how long to train, when to
// evaluate and checkpoint.
type Loop struct {
	MaxSteps        int     `toml:"max_steps" doc:"optimizer steps in the whole run; the cosine schedule ends here"`
	MaxMinutes      float64 `toml:"max_minutes" doc:"stop (with a checkpoint) after this much wall time in this process; 0 = no limit"`
	BatchTokens     int     `toml:"batch_tokens" doc:"tokens per optimizer step; gradient accumulation over micro-batches reaches it (a multiple of micro_batch*seq_len)"`
	MicroBatch      int     `toml:"micro_batch" doc:"sequences per forward/backward pass"`
	EvalEvery       int     `toml:"eval_every" doc:"evaluate held-out loss every this many steps; 0 = only at the end"`
	EvalTokens      int     `toml:"eval_tokens" doc:"held-out tokens per evaluation (the same ones every time)"`
	CheckpointEvery int     `toml:"checkpoint_every" doc:"write a checkpoint every this many steps; 0 = only at the end"`
	KeepCheckpoints int     `toml:"keep_checkpoints" doc:"newest checkpoints to keep; older ones are deleted"`
	LogEvery        int     `toml:"log_every" doc:"log a training line every this many steps"`
}

// Metrics says where training metrics go besides the log.
type Metrics struct {
	JSONL string `toml:"jsonl" doc:"JSONL metrics file, relative to out_dir unless absolute; empty = none"`
	Addr  string `toml:"addr" doc:"serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9100), and a miner's or validator's dashboard on http://ADDR/; empty = off"`
}

// DefaultTrain is a small GPT-2 (16M parameters, most of them the
// embedding) that learns the built-in corpus on a 2-core CPU in about ten
// minutes: held-out loss 10.8 → ~4.4 over 250 steps of 4096 tokens.
func DefaultTrain() Train {
	return Train{
		RunID:     "local",
		Seed:      1337,
		OutDir:    "runs/local",
		Device:    "cpu",
		Precision: "auto",
		Model: Model{
			NLayer: 4, NHead: 4, NEmbd: 256, NPositions: 256, VocabSize: 50257,
		},
		Data: Data{ValFraction: 0.005, SeqLen: 128},
		Optim: Optim{
			LR: 2e-3, MinLR: 2e-4, WarmupSteps: 20,
			WeightDecay: 0.1, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, GradClip: 1.0,
		},
		Loop: Loop{
			MaxSteps: 250, BatchTokens: 4096, MicroBatch: 16,
			EvalEvery: 25, EvalTokens: 16384,
			CheckpointEvery: 50, KeepCheckpoints: 2, LogEvery: 10,
		},
		Metrics: Metrics{JSONL: "metrics.jsonl"},
		Wandb:   Wandb{Project: "dtrain"},
	}
}
