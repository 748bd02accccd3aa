package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/torch"
)

func ckptCommand() *cli.Command {
	return &cli.Command{
		Name:  "ckpt",
		Usage: "create and inspect HuggingFace-compatible GPT-2 checkpoints",
		Subcommands: []*cli.Command{
			{
				Name:  "init",
				Usage: "write a freshly initialized GPT-2 as config.json + model.safetensors",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "out", Required: true, Usage: "checkpoint directory to create"},
					&cli.IntFlag{Name: "layers", Value: 12, Usage: "n_layer"},
					&cli.IntFlag{Name: "heads", Value: 12, Usage: "n_head"},
					&cli.IntFlag{Name: "embd", Value: 768, Usage: "n_embd (a multiple of heads)"},
					&cli.IntFlag{Name: "ctx", Value: 1024, Usage: "n_positions"},
					&cli.IntFlag{Name: "vocab", Value: torch.GPT2Vocab, Usage: "vocab_size"},
					&cli.Uint64Flag{Name: "seed", Value: 0, Usage: "initialization seed"},
					&cli.BoolFlag{Name: "force", Usage: "overwrite an existing checkpoint in --out"},
				},
				Action: ckptInit,
			},
			{
				Name:      "inspect",
				Usage:     "print a checkpoint's config, parameter count and tensor table, and check it loads",
				ArgsUsage: "DIR",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action:    ckptInspect,
			},
		},
	}
}

func ckptInit(c *cli.Context) error {
	out := c.String("out")
	if _, err := os.Stat(filepath.Join(out, torch.WeightsFile)); err == nil && !c.Bool("force") {
		return fmt.Errorf("%s already holds a checkpoint (use --force to overwrite)", out)
	}
	cfg := torch.NewConfig(c.Int("layers"), c.Int("heads"), c.Int("embd"), c.Int("ctx"), c.Int("vocab"))
	if err := cfg.Validate(); err != nil {
		return err
	}
	m, err := torch.NewModel(cfg, torch.CPU, c.Uint64("seed"))
	if err != nil {
		return err
	}
	defer m.Close()
	if err := torch.SaveModel(out, m); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: GPT-2 with %d layers, %d heads, %d wide, context %d, vocab %d: %s parameters\n",
		out, cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.NPositions, cfg.VocabSize, humanCount(m.NumParams()))
	return nil
}

// inspectReport is what `ckpt inspect --json` prints.
type inspectReport struct {
	Dir       string             `json:"dir"`
	Config    torch.Config       `json:"config"`
	Params    int64              `json:"params"`
	Tensors   []torch.TensorInfo `json:"tensors"`
	Metadata  map[string]string  `json:"metadata,omitempty"`
	Optimizer *optimizerSummary  `json:"optimizer,omitempty"`
	Valid     bool               `json:"valid"`
	Problem   string             `json:"problem,omitempty"`
}

type optimizerSummary struct {
	Metadata map[string]string `json:"metadata"`
	Tensors  int               `json:"tensors"`
}

func ckptInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("ckpt inspect: want exactly one checkpoint directory, got %q", c.Args().Slice())
	}
	dir := c.Args().First()
	cfg, err := torch.LoadConfig(dir)
	if err != nil {
		return err
	}
	f, err := torch.OpenSafetensors(filepath.Join(dir, torch.WeightsFile))
	if err != nil {
		return err
	}
	hdr := f.Header()
	f.Close()
	r := inspectReport{Dir: dir, Config: cfg, Params: torch.NumParams(cfg), Tensors: hdr.Tensors, Metadata: hdr.Metadata, Valid: true}
	// Reading every tensor is the only way to know the file is whole and finite.
	if _, err := torch.ReadWeights(filepath.Join(dir, torch.WeightsFile), cfg); err != nil {
		r.Valid, r.Problem = false, err.Error()
	}
	if of, err := torch.OpenSafetensors(filepath.Join(dir, torch.OptimizerFile)); err == nil {
		r.Optimizer = &optimizerSummary{Metadata: of.Header().Metadata, Tensors: len(of.Header().Tensors)}
		of.Close()
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printInspect(c.App.Writer, r)
	}
	if !r.Valid {
		return cli.Exit("", 1)
	}
	return nil
}

func printInspect(w io.Writer, r inspectReport) {
	cfg := r.Config
	fmt.Fprintf(w, "checkpoint  %s\n", r.Dir)
	fmt.Fprintf(w, "model       GPT-2: n_layer %d, n_head %d, n_embd %d, n_positions %d, vocab_size %d, n_inner %d, %s, eps %g\n",
		cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.NPositions, cfg.VocabSize, cfg.Inner(), cfg.ActivationFunction, cfg.LayerNormEpsilon)
	fmt.Fprintf(w, "parameters  %s (%d)\n", humanCount(r.Params), r.Params)
	var bytes int64
	for _, t := range r.Tensors {
		bytes += t.End - t.Begin
	}
	fmt.Fprintf(w, "tensors     %d stored, %s\n\n", len(r.Tensors), humanBytes(bytes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDTYPE\tSHAPE\tPARAMS")
	for _, t := range r.Tensors {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\n", t.Name, t.DType, t.Shape, t.Numel())
	}
	tw.Flush()
	if r.Optimizer != nil {
		fmt.Fprintf(w, "\noptimizer   %s, step %s, %d tensors\n", r.Optimizer.Metadata["optimizer"], r.Optimizer.Metadata["step"], r.Optimizer.Tensors)
	}
	if r.Valid {
		fmt.Fprintln(w, "\nvalid       yes: every tensor present, shaped as config.json says, and finite")
	} else {
		fmt.Fprintf(w, "\nvalid       NO: %s\n", r.Problem)
	}
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// humanBytes is how dtrain prints a size everywhere: powers of 1024 with
// IEC units (KiB, MiB, GiB).
func humanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }
