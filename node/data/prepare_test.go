package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// corpusDir writes n distinct small documents as JSONL and text files.
func corpusDir(t *testing.T, n int) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	var docs []string
	var jsonl strings.Builder
	for i := range n {
		doc := fmt.Sprintf("Document %d says: the quick brown fox %d jumps over %d lazy dogs.", i, i*i, i%7)
		if i%10 == 3 {
			writeFile(t, filepath.Join(dir, fmt.Sprintf("z%03d.txt", i)), doc)
		} else {
			fmt.Fprintf(&jsonl, "{\"text\":%q}\n", doc)
		}
		docs = append(docs, doc)
	}
	writeFile(t, filepath.Join(dir, "docs.jsonl"), jsonl.String())
	// Documents in input order: docs.jsonl first, then the z*.txt files.
	var ordered []string
	for i, d := range docs {
		if i%10 != 3 {
			ordered = append(ordered, d)
		}
	}
	for i, d := range docs {
		if i%10 == 3 {
			ordered = append(ordered, d)
		}
	}
	return dir, ordered
}

// splitDocs cuts a token stream at EOTs and decodes each document.
func splitDocs(t *testing.T, toks []int32) []string {
	t.Helper()
	if len(toks) > 0 && toks[0] != EOT {
		t.Fatalf("stream starts with %d, not EOT", toks[0])
	}
	var docs []string
	for _, part := range bytes.Split(int32Bytes(toks), []byte{0xff}) {
		if len(part) == 0 {
			continue
		}
		s, err := gpt2Tok(t).Decode(bytesInt32(part))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, s)
	}
	return docs
}

// int32Bytes maps tokens to bytes with EOT as 0xff, others as 2 bytes
// below 0xff, so bytes.Split can cut at EOT.
func int32Bytes(toks []int32) []byte {
	var b []byte
	for _, t := range toks {
		if t == EOT {
			b = append(b, 0xff)
		} else {
			b = append(b, byte(t/250), byte(t%250))
		}
	}
	return b
}

func bytesInt32(b []byte) []int32 {
	var toks []int32
	for i := 0; i+1 < len(b); i += 2 {
		toks = append(toks, int32(b[i])*250+int32(b[i+1]))
	}
	return toks
}

func readSplit(t *testing.T, dir string, shards []ShardEntry, max int64) []int32 {
	t.Helper()
	var all []int32
	for i, s := range shards {
		toks, info, err := ReadShard(filepath.Join(dir, s.File), 0)
		if err != nil {
			t.Fatal(err)
		}
		if info.Tokens != s.Tokens || info.Tokens > max || (i < len(shards)-1 && info.Tokens != max) {
			t.Fatalf("%s: %d tokens, manifest %d, shard size %d", s.File, info.Tokens, s.Tokens, max)
		}
		all = append(all, toks...)
	}
	return all
}

func TestPrepareDeterministicSplit(t *testing.T) {
	in, docs := corpusDir(t, 300)
	const shard, frac = 1000, 0.1
	var outs []string
	for _, workers := range []int{1, 4} {
		out := filepath.Join(t.TempDir(), "out")
		var last PrepareProgress
		st, err := Prepare(context.Background(), PrepareOptions{In: in, Out: out, ShardTokens: shard, ValFraction: frac, Workers: workers,
			Progress: func(p PrepareProgress) { last = p }})
		if err != nil {
			t.Fatal(err)
		}
		if st.Documents != 300 || st.Files != 31 || st.TrainShards < 3 || st.ValShards < 1 || st.ValFallback {
			t.Fatalf("workers=%d: stats %+v", workers, st)
		}
		if last.Documents != 300 || last.Tokens != st.TrainTokens+st.ValTokens || last.InputBytes != last.InputTotal {
			t.Errorf("last progress %+v, stats %+v", last, st)
		}
		outs = append(outs, out)
	}
	// Byte-identical output for any worker count.
	for _, name := range dirFiles(t, outs[0]) {
		a, _ := os.ReadFile(filepath.Join(outs[0], name))
		b, err := os.ReadFile(filepath.Join(outs[1], name))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs between 1 and 4 workers (%v)", name, err)
		}
	}
	if !slices.Equal(dirFiles(t, outs[0]), dirFiles(t, outs[1])) {
		t.Fatalf("files differ: %v vs %v", dirFiles(t, outs[0]), dirFiles(t, outs[1]))
	}

	m, err := ReadManifest(outs[0])
	if err != nil {
		t.Fatal(err)
	}
	train := splitDocs(t, readSplit(t, outs[0], m.Train, shard))
	val := splitDocs(t, readSplit(t, outs[0], m.Val, shard))
	// Val is exactly the documents whose hash is below the fraction, in
	// input order; train is the rest: disjoint, and nothing lost.
	var wantTrain, wantVal []string
	for _, d := range docs {
		if hashFraction(d) < frac {
			wantVal = append(wantVal, d)
		} else {
			wantTrain = append(wantTrain, d)
		}
	}
	if !slices.Equal(train, wantTrain) || !slices.Equal(val, wantVal) {
		t.Fatalf("train %d docs (want %d), val %d docs (want %d)", len(train), len(wantTrain), len(val), len(wantVal))
	}
	if m.ValDocuments != int64(len(wantVal)) || m.Tokenizer != TokenizerID || m.Source != in || m.TrainTokens+m.ValTokens == 0 {
		t.Errorf("manifest %+v", m)
	}
}

func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestPrepareValFallback: a tiny input whose documents all hash into
// train still gets a val shard, cut from the end of train.
func TestPrepareValFallback(t *testing.T) {
	dir := t.TempDir()
	doc := strings.Repeat("To be, or not to be, that is the question.\n", 300)
	writeFile(t, filepath.Join(dir, "play.txt"), doc)
	if hashFraction(doc) < 0.01 {
		t.Fatal("test document hashes into val; pick another")
	}
	out := filepath.Join(t.TempDir(), "out")
	st, err := Prepare(context.Background(), PrepareOptions{In: dir, Out: out, ValFraction: 0.01, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	all := append([]int32{EOT}, gpt2Tok(t).Encode(doc)...)
	want := min(int64(minFallbackVal), int64(len(all))/2)
	if !st.ValFallback || st.ValTokens != want || st.TrainTokens+st.ValTokens != int64(len(all)) {
		t.Fatalf("stats %+v, want %d val tokens of %d", st, want, len(all))
	}
	train, _, _ := ReadShard(filepath.Join(out, "train_000000.bin"), 0)
	val, _, err := ReadShard(filepath.Join(out, "val_000000.bin"), 0)
	if err != nil || !slices.Equal(append(train, val...), all) {
		t.Fatalf("train+val is not the document's tokens (%v)", err)
	}
	if m, _ := ReadManifest(out); !m.ValFallback {
		t.Error("manifest does not record the fallback")
	}

	// No val split at all on request.
	out2 := filepath.Join(t.TempDir(), "out")
	st, err = Prepare(context.Background(), PrepareOptions{In: dir, Out: out2, ValFraction: -1})
	if err != nil || st.ValTokens != 0 || st.ValShards != 0 || st.TrainTokens != int64(len(all)) {
		t.Fatalf("no val: %+v %v", st, err)
	}
}

// TestPrepareEOTRules drives the writer directly: EOT before each document,
// none before a continued chunk in the same split, one before a continued
// chunk whose predecessor went to the other split.
func TestPrepareEOTRules(t *testing.T) {
	out := t.TempDir()
	p := &preparer{opts: PrepareOptions{Out: out, ValFraction: 0.5}, train: newShardWriter(out, 100), val: newShardWriter(out, 100), lastSplit: -1}
	pieces := []piece{
		{doc: Document{}, tokens: []int32{1}},
		{doc: Document{Continued: true}, tokens: []int32{2}},
		{doc: Document{Continued: true}, val: true, tokens: []int32{3}},
		{doc: Document{Continued: true}, tokens: []int32{4}},
		{doc: Document{}, val: true, tokens: []int32{5}},
	}
	for i := range pieces {
		if err := p.write(&pieces[i]); err != nil {
			t.Fatal(err)
		}
	}
	m, err := p.finish(Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	train := readSplit(t, out, m.Train, 100)
	val := readSplit(t, out, m.Val, 100)
	if !slices.Equal(train, []int32{EOT, 1, 2, EOT, 4}) || !slices.Equal(val, []int32{EOT, 3, EOT, 5}) {
		t.Fatalf("train %v, val %v", train, val)
	}
	if m.Documents != 2 || m.ValDocuments != 1 {
		t.Errorf("documents %d (val %d), want 2 (1)", m.Documents, m.ValDocuments)
	}
}

// TestPrepareFailureLeavesNoShards: bad input, cancellation and a used
// output directory fail clearly and leave nothing that looks like data.
func TestPrepareFailureLeavesNoShards(t *testing.T) {
	in, _ := corpusDir(t, 50)
	writeFile(t, filepath.Join(in, "zz.jsonl"), "{\"text\":\"fine\"}\n{\"txt\":\"oops\"}\n")
	out := filepath.Join(t.TempDir(), "out")
	_, err := Prepare(context.Background(), PrepareOptions{In: in, Out: out, ShardTokens: 50})
	if err == nil || !strings.Contains(err.Error(), "zz.jsonl:2: no \"text\" field") {
		t.Fatalf("bad line: %v", err)
	}
	if names := dirFiles(t, out); len(names) != 0 {
		t.Fatalf("failed prepare left %v", names)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	good, _ := corpusDir(t, 50)
	if _, err := Prepare(ctx, PrepareOptions{In: good, Out: out, ShardTokens: 50}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled prepare: %v", err)
	}
	if names := dirFiles(t, out); len(names) != 0 {
		t.Fatalf("canceled prepare left %v", names)
	}

	if _, err := Prepare(context.Background(), PrepareOptions{In: good, Out: out}); err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(context.Background(), PrepareOptions{In: good, Out: out}); err == nil || !strings.Contains(err.Error(), "already holds prepared data") {
		t.Fatalf("prepare over prepared data: %v", err)
	}
	for _, o := range []PrepareOptions{{In: good, Out: out, ShardTokens: -1}, {In: good, Out: out, ValFraction: 1}, {In: good, Out: out, Workers: -2}, {Out: out}} {
		if _, err := Prepare(context.Background(), o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

func TestEnsurePreparedCache(t *testing.T) {
	in, _ := corpusDir(t, 40)
	cache := t.TempDir()
	opts := PrepareOptions{ShardTokens: 500, ValFraction: 0.1}
	dir, err := EnsurePrepared(context.Background(), in, cache, opts)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(filepath.Join(dir, ManifestFile))

	// Again: the same directory, not prepared again.
	dir2, err := EnsurePrepared(context.Background(), in, cache, opts)
	st2, _ := os.Stat(filepath.Join(dir2, ManifestFile))
	if err != nil || dir2 != dir || !st2.ModTime().Equal(st1.ModTime()) {
		t.Fatalf("second call: %s (%v), manifest rewritten: %v", dir2, err, !st2.ModTime().Equal(st1.ModTime()))
	}
	// A prepared directory is used as is.
	if d, err := EnsurePrepared(context.Background(), dir, cache, opts); err != nil || d != dir {
		t.Fatalf("prepared dir: %s, %v", d, err)
	}
	// Other options, or a changed input file, prepare afresh.
	if d, _ := EnsurePrepared(context.Background(), in, cache, PrepareOptions{ShardTokens: 501, ValFraction: 0.1}); d == dir {
		t.Fatal("a different shard size reused the cache")
	}
	writeFile(t, filepath.Join(in, "z003.txt"), "A changed document, with many more tokens than before: "+strings.Repeat("more words, ", 20))
	os.Chtimes(filepath.Join(in, "z003.txt"), time.Now(), time.Now().Add(time.Second))
	dir3, err := EnsurePrepared(context.Background(), in, cache, opts)
	if err != nil || dir3 == dir {
		t.Fatalf("after a change: %s, %v", dir3, err)
	}
	if m3, _ := ReadManifest(dir3); m3.TrainTokens+m3.ValTokens <= m1.TrainTokens+m1.ValTokens {
		t.Fatalf("re-prepared data has %d tokens, before %d", m3.TrainTokens+m3.ValTokens, m1.TrainTokens+m1.ValTokens)
	}
}

// TestEnsurePreparedConcurrent: processes racing on one key all end up
// with the same complete directory and leave no temporary ones.
func TestEnsurePreparedConcurrent(t *testing.T) {
	in, _ := corpusDir(t, 40)
	cache := t.TempDir()
	dirs := make([]string, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range dirs {
		wg.Go(func() { dirs[i], errs[i] = EnsurePrepared(context.Background(), in, cache, PrepareOptions{Workers: 1}) })
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Fatalf("caller %d: %s, %v (caller 0: %s)", i, dirs[i], errs[i], dirs[0])
		}
	}
	if _, err := ReadManifest(dirs[0]); err != nil {
		t.Fatal(err)
	}
	if names := dirFiles(t, cache); len(names) != 1 {
		t.Fatalf("cache holds %v, want one directory", names)
	}
}
