package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtrain-dev/dtrain/node/data"
)

// smallCorpus writes 30 documents as JSONL and text files, plus a file of
// an unsupported type.
func smallCorpus(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var jsonl strings.Builder
	for i := range 25 {
		fmt.Fprintf(&jsonl, "{\"text\":%q,\"id\":%d}\n", fmt.Sprintf("Record %d: a sentence about topic %d, with words.", i, i*7), i)
	}
	files := map[string]string{"a.jsonl": jsonl.String(), "notes.md": "# not data"}
	for i := range 5 {
		files[fmt.Sprintf("txt/%d.txt", i)] = fmt.Sprintf("Plain text file %d.\nSecond line of file %d.\n", i, i)
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDataPrepareInspectEval: prepare a directory, inspect the result, and
// evaluate a checkpoint on the prepared data and on the raw text.
func TestDataPrepareInspectEval(t *testing.T) {
	in := smallCorpus(t)
	out := filepath.Join(t.TempDir(), "prepared")
	got, err := run(t, "data", "prepare", "--in", in, "--out", out, "--shard-tokens", "200", "--val-fraction", "0.2", "--workers", "2")
	if err != nil {
		t.Fatalf("data prepare: %v\n%s", err, got)
	}
	if !strings.Contains(got, "prepared 30 documents") || !strings.Contains(got, "from 6 files") {
		t.Errorf("prepare printed %q", got)
	}
	m, err := data.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Documents != 30 || m.FilesSkipped != 1 || len(m.Train) < 2 || len(m.Val) < 1 || m.ValTokens == 0 {
		t.Fatalf("manifest %+v", m)
	}
	toks, _, err := data.ReadShard(filepath.Join(out, "train_000000.bin"), 0)
	if err != nil || len(toks) != 200 || toks[0] != data.EOT {
		t.Fatalf("first train shard: %d tokens, first %v, %v", len(toks), toks[:1], err)
	}

	got, err = run(t, "data", "inspect", out)
	if err != nil || !strings.Contains(got, "30 (") || !strings.Contains(got, "first 48 tokens of train_000000.bin:\n<|endoftext|>") {
		t.Errorf("data inspect: %v\n%s", err, got)
	}

	ckpt := filepath.Join(t.TempDir(), "ckpt")
	if got, err := run(t, "ckpt", "init", "--out", ckpt, "--layers", "1", "--heads", "1", "--embd", "8", "--ctx", "16", "--seed", "1"); err != nil {
		t.Fatalf("ckpt init: %v\n%s", err, got)
	}
	evalJSON := func(dataPath string) evalResult {
		t.Helper()
		got, err := run(t, "eval", "--checkpoint", ckpt, "--data", dataPath, "--seq-len", "8", "--json")
		if err != nil {
			t.Fatalf("eval on %s: %v\n%s", dataPath, err, got)
		}
		var r evalResult
		if err := json.Unmarshal([]byte(got), &r); err != nil || r.Tokens == 0 || r.Tokens != 8*r.Windows || !(r.Loss > 0) {
			t.Fatalf("eval on %s printed %q (%v)", dataPath, got, err)
		}
		return r
	}
	// A prepared directory is evaluated on its val shards.
	if dir, val := evalJSON(out), evalJSON(filepath.Join(out, "val_000000.bin")); len(m.Val) == 1 && dir != val {
		t.Errorf("eval on the prepared directory %+v, on its val shard %+v", dir, val)
	}
	// Raw text works too, tokenized like prepare: all 30 documents.
	if r := evalJSON(in); int64(r.Windows) != (m.TrainTokens+m.ValTokens-1)/8 {
		t.Errorf("eval on the text directory: %d windows, want %d", r.Windows, (m.TrainTokens+m.ValTokens-1)/8)
	}
}

func TestDataPrepareBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	os.MkdirAll(bad, 0o755)
	os.WriteFile(filepath.Join(bad, "x.jsonl"), []byte("{\"text\":\"ok\"}\n{\"text\":\"unterminated}\n"), 0o644)
	mdOnly := filepath.Join(dir, "md")
	os.MkdirAll(mdOnly, 0o755)
	os.WriteFile(filepath.Join(mdOnly, "a.md"), []byte("# x"), 0o644)
	good := smallCorpus(t)
	prepared := filepath.Join(dir, "prepared")
	if _, err := run(t, "data", "prepare", "--in", good, "--out", prepared); err != nil {
		t.Fatal(err)
	}
	out := func() string { return filepath.Join(t.TempDir(), "out") }
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"data", "prepare", "--in", bad, "--out", out()}, "x.jsonl:2: malformed JSON"},
		{[]string{"data", "prepare", "--in", filepath.Join(dir, "missing"), "--out", out()}, "no such file"},
		{[]string{"data", "prepare", "--in", mdOnly, "--out", out()}, "no .txt, .jsonl or .parquet files (1 other files skipped)"},
		{[]string{"data", "prepare", "--in", filepath.Join(mdOnly, "a.md"), "--out", out()}, "unsupported file type"},
		{[]string{"data", "prepare", "--in", good, "--out", prepared}, "already holds prepared data"},
		{[]string{"data", "prepare", "--in", good}, `"out" not set`},
		{[]string{"data", "prepare", "--in", good, "--out", out(), "--val-fraction", "1.5"}, "--val-fraction must be in [0, 1)"},
		{[]string{"data", "prepare", "--in", good, "--out", out(), "--shard-tokens", "0"}, "--shard-tokens must be >= 1"},
		{[]string{"data", "prepare", "--in", good, "--out", out(), "--workers", "-1"}, "--workers must be >= 1"},
		{[]string{"data", "inspect"}, "takes one DIR"},
		{[]string{"data", "inspect", filepath.Join(bad, "x.jsonl"), "extra"}, "takes one DIR"},
	}
	for _, c := range cases {
		if _, err := run(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.args[1:], err, c.want)
		}
	}
	// A damaged prepared directory is reported as such.
	os.Truncate(filepath.Join(prepared, "train_000000.bin"), 100)
	if _, err := run(t, "data", "inspect", prepared); err == nil || !strings.Contains(err.Error(), "incomplete or damaged") {
		t.Errorf("inspect a damaged directory: %v", err)
	}
}

func TestBenchData(t *testing.T) {
	got, err := run(t, "bench", "data", "--in", smallCorpus(t), "--mb", "0.01", "--seq-len", "8", "--batch", "2", "--workers", "2", "--json")
	if err != nil {
		t.Fatalf("bench data: %v\n%s", err, got)
	}
	var r dataBenchReport
	if err := json.Unmarshal([]byte(got), &r); err != nil {
		t.Fatalf("bench data printed %q: %v", got, err)
	}
	if r.Documents != 30 || r.Tokens == 0 || len(r.Rates) != 4 {
		t.Fatalf("report %+v", r)
	}
	for _, x := range r.Rates {
		if !(x.TokensPerS > 0) || x.VsTraining != x.TokensPerS/5000 {
			t.Errorf("stage %+v", x)
		}
	}
}
