package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog/log"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/node/data"
)

func dataCommand() *cli.Command {
	return &cli.Command{
		Name:  "data",
		Usage: "tokenize training data into llm.c shards and inspect it",
		Subcommands: []*cli.Command{
			{
				Name:  "prepare",
				Usage: "tokenize text (.txt, .jsonl, .parquet, gzipped or not; a file or a directory) into train/val shards",
				Description: "Each document becomes [EOT] + its GPT-2 tokens, packed into train_NNNNNN.bin and val_NNNNNN.bin " +
					"(llm.c's format) plus manifest.json. Which documents go to val depends only on their text, " +
					"so the output is identical for any --workers. --in " + data.BuiltinCorpus + " is the Go standard " +
					"library's source from this machine's GOROOT.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "in", Value: data.BuiltinCorpus, Usage: "a file, a directory, or " + data.BuiltinCorpus},
					&cli.StringFlag{Name: "out", Required: true, Usage: "directory to write the shards into (must not hold prepared data)"},
					&cli.Int64Flag{Name: "shard-tokens", Value: data.DefaultShardTokens, Usage: "tokens per shard"},
					&cli.Float64Flag{Name: "val-fraction", Value: data.DefaultValFraction, Usage: "share of documents held out for validation (0: none)"},
					&cli.IntFlag{Name: "workers", Usage: "tokenizing goroutines (default: all cores)"},
				},
				Action: dataPrepare,
			},
			{
				Name:      "inspect",
				Usage:     "summarize prepared data (manifest and shards), a shard, or a data input",
				ArgsUsage: "DIR|FILE|" + data.BuiltinCorpus,
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "preview", Value: 48, Usage: "decode this many tokens of the first shard (0: none)"},
					&cli.BoolFlag{Name: "json", Usage: "print the manifest or input summary as JSON"},
				},
				Action: dataInspect,
			},
		},
	}
}

func dataPrepare(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("data prepare takes no arguments (got %q); use --in and --out", c.Args().Slice())
	}
	if n := c.Int64("shard-tokens"); n < 1 {
		return fmt.Errorf("--shard-tokens must be >= 1, got %d", n)
	}
	f := c.Float64("val-fraction")
	if !(f >= 0 && f < 1) {
		return fmt.Errorf("--val-fraction must be in [0, 1), got %v", f)
	}
	if f == 0 {
		f = -1 // none
	}
	if n := c.Int("workers"); n < 0 {
		return fmt.Errorf("--workers must be >= 1, got %d", n)
	}
	in := c.String("in")
	inputs, err := data.ListInputs(in)
	if err != nil {
		return err
	}
	if len(inputs.Skipped) > 0 {
		log.Warn().Int("files", len(inputs.Skipped)).Str("first", inputs.Skipped[0]).Msg("skipping files of unsupported types")
	}
	if inputs.Corpus != nil {
		log.Info().Str("root", inputs.Corpus.Root).Str("go", inputs.Corpus.GoVersion).Int("files", inputs.Corpus.Files).
			Int64("bytes", inputs.Corpus.Bytes).Msg("builtin corpus: the Go standard library's source")
	}
	opts := data.PrepareOptions{In: in, Out: c.String("out"), ShardTokens: c.Int64("shard-tokens"), ValFraction: f, Workers: c.Int("workers"),
		Warn: warnData}
	var bar *progressbar.ProgressBar
	if isTerminal(os.Stderr) {
		bar = progressbar.NewOptions64(inputs.Bytes(),
			progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription("tokenizing"),
			progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(), progressbar.OptionFullWidth())
		opts.Progress = func(p data.PrepareProgress) { bar.Set64(p.InputBytes) }
	}
	// Ctrl-C cancels cleanly: Prepare removes its unfinished shards.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := data.Prepare(ctx, opts)
	if bar != nil {
		bar.Exit()
	}
	if err != nil {
		return err
	}
	log.Info().Int("files", st.Files).Int64("documents", st.Documents).Int64("bytes", st.Bytes).
		Int64("train_tokens", st.TrainTokens).Int64("val_tokens", st.ValTokens).
		Int("train_shards", st.TrainShards).Int("val_shards", st.ValShards).Bool("val_fallback", st.ValFallback).
		Dur("took_ms", st.Elapsed).Float64("tokens_per_s", st.TokensPerSecond()).Str("out", opts.Out).Msg("prepared")
	fmt.Fprintf(c.App.Writer, "prepared %d documents (%s) from %d files into %s: %d train tokens in %d shards, %d val tokens in %d shards, %.1fs (%.0f tokens/s)\n",
		st.Documents, humanBytes(st.Bytes), st.Files, opts.Out, st.TrainTokens, st.TrainShards, st.ValTokens, st.ValShards,
		st.Elapsed.Seconds(), st.TokensPerSecond())
	if st.ValFallback {
		fmt.Fprintf(c.App.Writer, "no document hashed into val; held out the last %d train tokens as val instead\n", st.ValTokens)
	}
	return nil
}

func dataInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("data inspect takes one DIR, FILE or %s, got %q", data.BuiltinCorpus, c.Args().Slice())
	}
	path := c.Args().First()
	w := c.App.Writer
	if path != data.BuiltinCorpus {
		if _, err := os.Stat(filepath.Join(path, data.ManifestFile)); err == nil {
			return inspectManifest(c, path)
		}
	}
	in, err := data.ListInputs(path)
	if err != nil {
		return err
	}
	if len(in.Shards) > 0 && len(in.Text) == 0 {
		return inspectShards(c, in.Shards)
	}
	if c.Bool("json") {
		return json.NewEncoder(w).Encode(in)
	}
	if in.Corpus != nil {
		fmt.Fprintf(w, "builtin corpus: the Go standard library's source, %s at %s\n", in.Corpus.GoVersion, in.Corpus.Root)
	}
	counts := map[data.Format]int{}
	for _, f := range in.Text {
		counts[f.Format]++
	}
	if in.Corpus != nil {
		_, err := fmt.Fprintf(w, "%d Go source files, %s\n", len(in.Text), humanBytes(in.Bytes()))
		return err
	}
	fmt.Fprintf(w, "%d text files (%d .txt, %d .jsonl, %d .parquet), %s; %d token shards; %d files skipped\n",
		len(in.Text), counts[data.FormatText], counts[data.FormatJSONL], counts[data.FormatParquet],
		humanBytes(in.Bytes()), len(in.Shards), len(in.Skipped)+len(in.Binary))
	for _, p := range in.Binary {
		fmt.Fprintf(w, "skipped %s: named .txt but holds binary data\n", p)
	}
	return nil
}

// warnData logs an input file that data preparation skips.
func warnData(path, reason string) {
	log.Warn().Str("file", path).Msg(reason)
}

func inspectManifest(c *cli.Context, dir string) error {
	m, err := data.ReadManifest(dir)
	if err != nil {
		return fmt.Errorf("%s is incomplete or damaged: %w", dir, err)
	}
	w := c.App.Writer
	if c.Bool("json") {
		return json.NewEncoder(w).Encode(m)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "source\t%s\n", m.Source)
	if m.Corpus != nil {
		fmt.Fprintf(tw, "corpus\t%d files, %s of %s's standard library\n", m.Corpus.Files, humanBytes(m.Corpus.Bytes), m.Corpus.GoVersion)
	}
	fmt.Fprintf(tw, "tokenizer\t%s\n", m.Tokenizer)
	fmt.Fprintf(tw, "documents\t%d (%d val), %d files, %s of text\n", m.Documents, m.ValDocuments, m.Files, humanBytes(m.Bytes))
	fmt.Fprintf(tw, "train\t%d tokens in %d shards\n", m.TrainTokens, len(m.Train))
	fallback := ""
	if m.ValFallback {
		fallback = "; no document hashed into val, so the tail of train was held out"
	}
	fmt.Fprintf(tw, "val\t%d tokens in %d shards (fraction %g%s)\n", m.ValTokens, len(m.Val), m.ValFraction, fallback)
	fmt.Fprintf(tw, "shard size\t%d tokens\n", m.ShardTokens)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(m.Train) > 0 {
		return preview(c, filepath.Join(dir, m.Train[0].File))
	}
	return nil
}

func inspectShards(c *cli.Context, shards []data.InputFile) error {
	w := c.App.Writer
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var total int64
	for _, f := range shards {
		_, info, err := data.ReadShard(f.Path, 1)
		if err != nil {
			return err
		}
		total += info.Tokens
		fmt.Fprintf(tw, "%s\t%d tokens\n", f.Path, info.Tokens)
	}
	fmt.Fprintf(tw, "total\t%d tokens in %d shards\n", total, len(shards))
	if err := tw.Flush(); err != nil {
		return err
	}
	return preview(c, shards[0].Path)
}

// preview decodes the first --preview tokens of a shard, so a user can see
// the text and tokenizer are what they expect.
func preview(c *cli.Context, path string) error {
	n := c.Int("preview")
	if n <= 0 {
		return nil
	}
	toks, _, err := data.ReadShard(path, int64(n))
	if err != nil {
		return err
	}
	tok, err := data.GPT2()
	if err != nil {
		return err
	}
	text, err := tok.Decode(toks)
	if err != nil {
		return fmt.Errorf("%s: %w (not GPT-2 tokens?)", path, err)
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	_, err = fmt.Fprintf(c.App.Writer, "first %d tokens of %s:\n%s\n", len(toks), filepath.Base(path), text)
	return err
}
