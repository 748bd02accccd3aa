package data

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dtrain-dev/dtrain/torch"
)

// Prepare's defaults: llm.c's shard size and a small validation split.
const (
	DefaultShardTokens = 100_000_000
	DefaultValFraction = 0.005
	// minFallbackVal is the fewest tokens the val fallback holds out (as
	// long as that leaves train at least half the tokens).
	minFallbackVal = 2048
)

// PrepareOptions configures Prepare. The zero value of each field but In
// and Out means its default.
type PrepareOptions struct {
	In          string  // a file, a directory, or BuiltinCorpus
	Out         string  // directory for the shards and manifest.json
	ShardTokens int64   // tokens per shard (DefaultShardTokens)
	ValFraction float64 // share of documents held out (DefaultValFraction; < 0 for none)
	Workers     int     // tokenizing goroutines (runtime.NumCPU())
	// Progress, if set, is called from one goroutine as documents are
	// written, at most every 100 ms and once at the end.
	Progress  func(PrepareProgress)
	Tokenizer *Tokenizer // GPT2() if nil
	// Warn, if set, is told of each input file skipped as binary data
	// (a .txt file holding NUL bytes or invalid UTF-8).
	Warn func(path, reason string)
}

// PrepareProgress is a progress report.
type PrepareProgress struct {
	InputBytes int64 // bytes of the input files consumed (an estimate for parquet)
	InputTotal int64 // bytes of all input files
	Documents  int64
	Tokens     int64
}

// PrepareStats is what Prepare did.
type PrepareStats struct {
	Files, FilesSkipped     int
	Documents, ValDocuments int64
	Bytes                   int64 // text bytes tokenized
	TrainTokens, ValTokens  int64
	TrainShards, ValShards  int
	ValFallback             bool
	Elapsed                 time.Duration
}

// TokensPerSecond is the end-to-end rate.
func (s PrepareStats) TokensPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.TrainTokens+s.ValTokens) / s.Elapsed.Seconds()
}

func (o PrepareOptions) withDefaults() (PrepareOptions, error) {
	if o.ShardTokens == 0 {
		o.ShardTokens = DefaultShardTokens
	}
	if o.ValFraction == 0 {
		o.ValFraction = DefaultValFraction
	} else if o.ValFraction < 0 {
		o.ValFraction = 0
	}
	if o.Workers == 0 {
		o.Workers = runtime.NumCPU()
	}
	switch {
	case o.In == "":
		return o, errors.New("prepare: no input")
	case o.ShardTokens < 1 || o.ShardTokens > math.MaxInt32:
		return o, fmt.Errorf("prepare: shard size %d tokens, want 1 to %d", o.ShardTokens, math.MaxInt32)
	case o.ValFraction >= 1 || math.IsNaN(o.ValFraction):
		return o, fmt.Errorf("prepare: val fraction %v, want below 1", o.ValFraction)
	case o.Workers < 1:
		return o, fmt.Errorf("prepare: %d workers, want at least 1", o.Workers)
	}
	if o.Tokenizer == nil {
		t, err := GPT2()
		if err != nil {
			return o, err
		}
		o.Tokenizer = t
	}
	return o, nil
}

// Prepare tokenizes the documents of opts.In into llm.c shards in opts.Out:
// train_000000.bin, … and val_000000.bin, …, then manifest.json. Each
// document is [EOT] + its tokens, as in llm.c's fineweb.py.
//
// Which split a document goes to is a function of its text alone (a
// SHA-256 of it against ValFraction; a text file longer than TextChunk is
// split chunk by chunk, and a chunk whose predecessor went to the other
// split starts with EOT), so the output is byte-identical for any Workers.
// If ValFraction > 0 but no document hashed into val (tiny inputs), the
// last ValFraction of the train tokens (at least 2048, at most half, and
// only from the last train shard) is held out as val instead; the manifest
// records this as val_fallback. If instead every document hashed into val,
// the splits are swapped first.
//
// Shards become visible only when all are complete, and manifest.json is
// written last. Out must not already hold prepared data.
func Prepare(ctx context.Context, opts PrepareOptions) (PrepareStats, error) {
	start := time.Now()
	opts, err := opts.withDefaults()
	if err != nil {
		return PrepareStats{}, err
	}
	in, err := ListInputs(opts.In)
	if err != nil {
		return PrepareStats{}, err
	}
	in.warnBinary(opts.Warn)
	if err := checkOut(opts.Out); err != nil {
		return PrepareStats{}, err
	}
	src, err := in.open(opts.In)
	if err != nil {
		return PrepareStats{}, err
	}
	defer src.Close()
	p := &preparer{opts: opts, train: newShardWriter(opts.Out, opts.ShardTokens), val: newShardWriter(opts.Out, opts.ShardTokens), lastSplit: -1}
	p.stats.Files, p.stats.FilesSkipped = len(in.Text), len(in.Skipped)+len(in.Binary)
	p.progress.InputTotal = in.Bytes()
	if err := p.run(ctx, src); err != nil {
		return PrepareStats{}, errors.Join(fmt.Errorf("prepare %s: %w", opts.In, err), p.train.abort(), p.val.abort())
	}
	m, err := p.finish(in)
	if err != nil {
		return PrepareStats{}, errors.Join(fmt.Errorf("prepare %s: %w", opts.In, err), p.train.abort(), p.val.abort())
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return PrepareStats{}, err
	}
	if err := torch.WriteFileAtomic(filepath.Join(opts.Out, ManifestFile), append(raw, '\n')); err != nil {
		return PrepareStats{}, fmt.Errorf("prepare %s: %w", opts.In, err)
	}
	p.stats.TrainShards, p.stats.ValShards = len(m.Train), len(m.Val)
	p.stats.Elapsed = time.Since(start)
	return p.stats, nil
}

// checkOut creates out, refusing a directory that already holds shards or
// a manifest (stale shards would silently join the new ones).
func checkOut(out string) error {
	if out == "" {
		return errors.New("prepare: no output directory")
	}
	ents, err := os.ReadDir(out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("prepare: %w", err)
	}
	for _, e := range ents {
		if n := e.Name(); n == ManifestFile || (strings.HasSuffix(n, ".bin") && !strings.HasPrefix(n, ".")) {
			return fmt.Errorf("prepare: %s already holds prepared data (%s); remove it or choose another output directory", out, n)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

// piece is one document (or text chunk) moving through the pipeline.
type piece struct {
	seq    int64
	doc    Document
	val    bool
	pos    int64 // input bytes consumed when it was read
	bytes  int   // len(doc.Text), which is dropped once tokenized
	tokens []int32
}

type preparer struct {
	opts       PrepareOptions
	train, val *shardWriter
	lastSplit  int // split of the last piece written: 0 train, 1 val, -1 none
	stats      PrepareStats
	progress   PrepareProgress
	reported   time.Time
}

// run is the pipeline: one reader → N tokenizing workers → one writer that
// restores input order. At most inflight pieces exist at once, which
// bounds memory however slow one worker is.
func (p *preparer) run(ctx context.Context, src Source) error {
	workers := p.opts.Workers
	inflight := make(chan struct{}, 4*workers)
	jobs := make(chan *piece, 2*workers)
	results := make(chan *piece, 2*workers)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(jobs)
		return p.read(ctx, src, inflight, jobs)
	})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case pc, ok := <-jobs:
					if !ok {
						return nil
					}
					pc.tokens = p.opts.Tokenizer.Encode(pc.doc.Text)
					pc.bytes, pc.doc.Text = len(pc.doc.Text), "" // free the text early
					select {
					case results <- pc:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
		})
	}
	g.Go(func() error {
		wg.Wait()
		close(results)
		return nil
	})
	g.Go(func() error { return p.writeInOrder(ctx, results, inflight) })
	return g.Wait()
}

func (p *preparer) read(ctx context.Context, src Source, inflight chan struct{}, jobs chan<- *piece) error {
	pos, _ := src.(interface{ inputPos() int64 })
	for seq := int64(0); ; seq++ {
		select {
		case inflight <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		d, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		val := p.opts.ValFraction > 0 && hashFraction(d.Text) < p.opts.ValFraction
		pc := &piece{seq: seq, doc: d, val: val}
		if pos != nil {
			pc.pos = pos.inputPos()
		}
		select {
		case jobs <- pc:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// hashFraction maps text to [0, 1) by its SHA-256: the same text always
// lands in the same split, on any machine, in any order.
func hashFraction(text string) float64 {
	h := sha256.Sum256([]byte(text))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
}

func (p *preparer) writeInOrder(ctx context.Context, results <-chan *piece, inflight <-chan struct{}) error {
	pending := map[int64]*piece{}
	var next int64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case pc, ok := <-results:
			if !ok {
				if len(pending) > 0 {
					return fmt.Errorf("internal: %d pieces never written", len(pending))
				}
				p.report(true)
				return nil
			}
			pending[pc.seq] = pc
			for pc := pending[next]; pc != nil; pc = pending[next] {
				delete(pending, next)
				next++
				if err := p.write(pc); err != nil {
					return err
				}
				<-inflight
			}
		}
	}
}

var eotOnly = []int32{EOT}

func (p *preparer) write(pc *piece) error {
	w, split := p.train, 0
	if pc.val {
		w, split = p.val, 1
	}
	if !pc.doc.Continued || p.lastSplit != split {
		if err := w.write(eotOnly); err != nil {
			return err
		}
	}
	if err := w.write(pc.tokens); err != nil {
		return err
	}
	p.lastSplit = split
	if !pc.doc.Continued {
		p.stats.Documents++
		if pc.val {
			p.stats.ValDocuments++
		}
	}
	p.stats.Bytes += int64(pc.bytes)
	p.progress.InputBytes = max(p.progress.InputBytes, pc.pos)
	p.progress.Documents = p.stats.Documents
	p.progress.Tokens = p.train.total + p.val.total
	p.report(false)
	return nil
}

func (p *preparer) report(final bool) {
	if p.opts.Progress == nil || (!final && time.Since(p.reported) < 100*time.Millisecond) {
		return
	}
	p.reported = time.Now()
	if final {
		p.progress.InputBytes = p.progress.InputTotal
	}
	p.opts.Progress(p.progress)
}

// finish applies the val fallback, commits the shards and returns the
// manifest.
func (p *preparer) finish(in Inputs) (Manifest, error) {
	if p.opts.ValFraction > 0 {
		if p.train.total == 0 && p.val.total > 0 {
			p.train, p.val = p.val, p.train
			p.stats.ValDocuments = 0
		}
		if p.val.total == 0 && p.train.total > 1 {
			k := int64(math.Ceil(p.opts.ValFraction * float64(p.train.total)))
			k = min(max(k, minFallbackVal), p.train.total/2, p.train.n)
			toks, err := p.train.cutTail(k)
			if err != nil {
				return Manifest{}, err
			}
			if err := p.val.write(toks); err != nil {
				return Manifest{}, err
			}
			p.stats.ValFallback = true
		}
	}
	p.stats.TrainTokens, p.stats.ValTokens = p.train.total, p.val.total
	trainShards, err := p.train.commit("train")
	if err != nil {
		return Manifest{}, err
	}
	valShards, err := p.val.commit("val")
	if err != nil {
		return Manifest{}, err
	}
	if err := syncDir(p.opts.Out); err != nil {
		return Manifest{}, fmt.Errorf("sync %s: %w", p.opts.Out, err)
	}
	m := Manifest{
		Version: manifestVersion, Source: p.opts.In, Tokenizer: TokenizerID,
		ValFraction: p.opts.ValFraction, ShardTokens: p.opts.ShardTokens, ValFallback: p.stats.ValFallback,
		Files: p.stats.Files, FilesSkipped: p.stats.FilesSkipped,
		Documents: p.stats.Documents, ValDocuments: p.stats.ValDocuments, Bytes: p.stats.Bytes,
		TrainTokens: p.stats.TrainTokens, ValTokens: p.stats.ValTokens,
		Train: trainShards, Val: valShards,
	}
	m.Corpus = in.Corpus
	return m, nil
}
