package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/node/data"
)

func benchDataCommand() *cli.Command {
	return &cli.Command{
		Name:  "data",
		Usage: "data pipeline throughput (tokenizing, preparing, reading batches) against a training rate",
		Description: "Tokenizes the first --mb MB of --in with one worker and with --workers, prepares the same text " +
			"into shards, then reads every window of the shards in a run's shuffled order, batch by batch. " +
			"Each rate is compared to --train-tokens-per-s, what training consumes (`dtrain bench train` measures it).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Value: data.BuiltinCorpus, Usage: "text input: a file, a directory, or " + data.BuiltinCorpus},
			&cli.IntFlag{Name: "workers", Usage: "tokenizing goroutines (default: all cores)"},
			&cli.Float64Flag{Name: "mb", Value: 8, Usage: "MB of text to use"},
			&cli.IntFlag{Name: "seq-len", Value: 256, Usage: "T of the windows read"},
			&cli.IntFlag{Name: "batch", Value: 8, Usage: "windows per batch"},
			&cli.Float64Flag{Name: "train-tokens-per-s", Value: 5000, Usage: "training throughput to compare against"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		},
		Action: benchData,
	}
}

// dataRate is one measured stage.
type dataRate struct {
	Stage      string  `json:"stage"`
	Workers    int     `json:"workers,omitempty"`
	Seconds    float64 `json:"seconds"`
	MBPerS     float64 `json:"mb_per_s,omitempty"`
	TokensPerS float64 `json:"tokens_per_s"`
	VsTraining float64 `json:"vs_training"` // TokensPerS / --train-tokens-per-s
}

type dataBenchReport struct {
	In            string     `json:"in"`
	Documents     int        `json:"documents"`
	Bytes         int64      `json:"bytes"`
	Tokens        int64      `json:"tokens"`
	TokenizerLoad float64    `json:"tokenizer_load_s"`
	TrainTokensPS float64    `json:"train_tokens_per_s"`
	Rates         []dataRate `json:"rates"`
}

func benchData(c *cli.Context) error {
	workers, mb, seq, batch, train := c.Int("workers"), c.Float64("mb"), c.Int("seq-len"), c.Int("batch"), c.Float64("train-tokens-per-s")
	if workers == 0 {
		workers = runtime.NumCPU()
	}
	if workers < 1 || !(mb > 0) || seq < 1 || batch < 1 || !(train > 0) {
		return errors.New("--workers, --mb, --seq-len, --batch and --train-tokens-per-s must be positive")
	}
	r := dataBenchReport{In: c.String("in"), TrainTokensPS: train}
	start := time.Now()
	tok, err := data.GPT2()
	if err != nil {
		return err
	}
	r.TokenizerLoad = time.Since(start).Seconds()
	docs, err := firstDocuments(r.In, int64(mb*1e6))
	if err != nil {
		return err
	}
	r.Documents = len(docs)
	for _, d := range docs {
		r.Bytes += int64(len(d))
	}
	rate := func(stage string, w int, took time.Duration, bytes, tokens int64) {
		s := took.Seconds()
		dr := dataRate{Stage: stage, Workers: w, Seconds: s, TokensPerS: float64(tokens) / s}
		if bytes > 0 {
			dr.MBPerS = float64(bytes) / 1e6 / s
		}
		dr.VsTraining = dr.TokensPerS / train
		r.Rates = append(r.Rates, dr)
	}
	for _, w := range uniq(1, workers) {
		took, n := tokenizeAll(tok, docs, w)
		r.Tokens = n
		rate("tokenize", w, took, r.Bytes, n)
	}

	dir, err := os.MkdirTemp("", "dtrain-bench-data-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := writeJSONL(filepath.Join(dir, "in", "docs.jsonl"), docs); err != nil {
		return err
	}
	st, err := data.Prepare(c.Context, data.PrepareOptions{In: filepath.Join(dir, "in"), Out: filepath.Join(dir, "out"), Workers: workers, ValFraction: -1})
	if err != nil {
		return err
	}
	rate("prepare jsonl → shards", workers, st.Elapsed, st.Bytes, st.TrainTokens)

	took, n, err := readBatches(filepath.Join(dir, "out"), seq, batch)
	if err != nil {
		return err
	}
	rate(fmt.Sprintf("batches from shards (T=%d, B=%d, shuffled)", seq, batch), 1, took, 0, n)

	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(r)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "%s: %d documents, %s, %d tokens (%.2f tokens/byte); tokenizer loads in %.2fs\n",
		r.In, r.Documents, humanBytes(r.Bytes), r.Tokens, float64(r.Tokens)/float64(r.Bytes), r.TokenizerLoad)
	tw := newTable(w)
	fmt.Fprintf(tw, "stage\tworkers\tMB/s\ttokens/s\tvs training at %.0f tokens/s\t\n", train)
	for _, x := range r.Rates {
		mbs := "-"
		if x.MBPerS > 0 {
			mbs = fmt.Sprintf("%.2f", x.MBPerS)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.0f×\t\n", x.Stage, x.Workers, mbs, x.TokensPerS, x.VsTraining)
	}
	return tw.Flush()
}

func uniq(a, b int) []int {
	if a == b {
		return []int{a}
	}
	return []int{a, b}
}

// firstDocuments reads documents of in until they hold max bytes.
func firstDocuments(in string, max int64) ([]string, error) {
	src, err := data.OpenSource(in)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var docs []string
	var n int64
	for n < max {
		d, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, d.Text)
		n += int64(len(d.Text))
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s holds no text", in)
	}
	return docs, nil
}

// tokenizeAll encodes docs with w goroutines and returns the time taken
// and the token count.
func tokenizeAll(tok *data.Tokenizer, docs []string, w int) (time.Duration, int64) {
	var next, tokens atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range w {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(docs)); i = next.Add(1) - 1 {
				tokens.Add(int64(len(tok.Encode(docs[i]))))
			}
		})
	}
	wg.Wait()
	return time.Since(start), tokens.Load()
}

func writeJSONL(path string, docs []string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, d := range docs {
		if err := enc.Encode(map[string]string{"text": d}); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// readBatches reads every window of dir's train shards in a run's
// shuffled order into batch buffers, as training does.
func readBatches(dir string, seq, batch int) (time.Duration, int64, error) {
	ds, err := data.OpenDataset(dir, "train", seq)
	if err != nil {
		return 0, 0, err
	}
	defer ds.Close()
	if ds.Len() == 0 {
		return 0, 0, fmt.Errorf("%s: too few tokens for one window of %d", dir, seq+1)
	}
	order, err := data.NewOrder("bench", 0, ds.Len())
	if err != nil {
		return 0, 0, err
	}
	x, y := make([]int32, batch*seq), make([]int32, batch*seq)
	start := time.Now()
	var tokens int64
	for pos := int64(0); pos < ds.Len(); pos++ {
		b := int(pos % int64(batch))
		if err := ds.Window(order.Window(0, pos), x[b*seq:(b+1)*seq], y[b*seq:(b+1)*seq]); err != nil {
			return 0, 0, err
		}
		tokens += int64(seq)
	}
	return time.Since(start), tokens, nil
}
