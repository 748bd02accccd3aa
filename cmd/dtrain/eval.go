package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/train"
	"github.com/dtrain-dev/dtrain/torch"
)

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "mean next-token cross-entropy of a checkpoint on token shards or text",
		Description: "Window i is tokens[i·T .. i·T+T] (T+1 tokens; x drops the last, y the first), " +
			"non-overlapping, from the start of the data up to --max-tokens. Text is tokenized as " +
			"`dtrain data prepare` does it: [EOT] + tokens per document, files in path order. " +
			"A directory written by `dtrain data prepare` is evaluated on its val shards.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "checkpoint", Required: true, Usage: "checkpoint directory (config.json + model.safetensors), or a run's out_dir (its latest checkpoint)"},
			&cli.StringFlag{Name: "data", Required: true, Usage: "llm.c .bin shard(s), .txt, .jsonl, .parquet (.gz), a directory of them, or " + data.BuiltinCorpus},
			&cli.IntFlag{Name: "seq-len", Usage: "T, tokens predicted per window (default: the model's context, n_positions)"},
			&cli.Int64Flag{Name: "max-tokens", Usage: "read at most this many tokens (default: all)"},
			&cli.IntFlag{Name: "batch", Value: 8, Usage: "windows per forward pass"},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N", EnvVars: []string{"DTRAIN_DEVICE"}},
			&cli.BoolFlag{Name: "json", Usage: `print {"loss":..., "tokens":..., "windows":...}`},
		},
		Action: runEval,
	}
}

// evalResult is what `dtrain eval --json` prints.
type evalResult struct {
	Loss    float64 `json:"loss"`
	Tokens  int     `json:"tokens"`
	Windows int     `json:"windows"`
}

func runEval(c *cli.Context) error {
	seq, batch := c.Int("seq-len"), c.Int("batch")
	if c.IsSet("seq-len") && seq < 1 {
		return fmt.Errorf("--seq-len must be >= 1, got %d", seq)
	}
	if batch < 1 {
		return fmt.Errorf("--batch must be >= 1, got %d", batch)
	}
	if c.Int64("max-tokens") < 0 {
		return fmt.Errorf("--max-tokens must be >= 0, got %d", c.Int64("max-tokens"))
	}
	toks, err := readEvalTokens(c.String("data"), c.Int64("max-tokens"))
	if err != nil {
		return err
	}
	m, err := loadCheckpoint(c)
	if err != nil {
		return err
	}
	defer m.Close()
	if !c.IsSet("seq-len") {
		seq = m.Config().NPositions
	}
	if seq > m.Config().NPositions {
		return fmt.Errorf("--seq-len %d exceeds the model's n_positions %d", seq, m.Config().NPositions)
	}
	windows := data.WindowCount(len(toks), seq)
	if windows == 0 {
		return fmt.Errorf("%s: %d tokens make no full window of %d", c.String("data"), len(toks), seq+1)
	}
	var sum float64
	var count int
	for b := range data.Windows(toks, seq, batch) {
		s, n, err := m.EvalLoss(b)
		if err != nil {
			return fmt.Errorf("%s: %w", c.String("data"), err)
		}
		sum, count = sum+s, count+n
	}
	r := evalResult{Loss: sum / float64(count), Tokens: count, Windows: windows}
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(r)
	}
	fmt.Fprintf(c.App.Writer, "loss %.6f (perplexity %.2f) over %d tokens in %d windows of %d\n", r.Loss, math.Exp(r.Loss), r.Tokens, r.Windows, seq)
	return nil
}

// readEvalTokens reads up to max tokens (all if max <= 0) of path: the val
// shards of a prepared directory, else whatever data.ReadTokens accepts.
func readEvalTokens(path string, max int64) ([]int32, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() && data.IsPrepared(path) {
		if vals, err := data.ShardPaths(path, "val"); err == nil && len(vals) > 0 {
			var toks []int32
			for _, p := range vals {
				t, err := data.ReadTokens(p, nil, max-int64(len(toks)))
				if err != nil {
					return nil, err
				}
				toks = append(toks, t...)
				if max > 0 && int64(len(toks)) >= max {
					break
				}
			}
			return toks, nil
		}
	}
	return data.ReadTokens(path, nil, max)
}

// loadCheckpoint loads the model that --checkpoint names (a checkpoint
// directory or a run's out_dir) onto --device.
func loadCheckpoint(c *cli.Context) (*torch.Model, error) {
	dev, err := torch.ParseDevice(c.String("device"))
	if err != nil {
		return nil, err
	}
	dir, err := train.ResolveCheckpoint(c.String("checkpoint"))
	if err != nil {
		return nil, err
	}
	return torch.LoadModel(dir, dev)
}
