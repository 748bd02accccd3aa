package data

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOpenTokensPacksWithEOT checks llm.c's packing: every document, from
// every format, is [EOT] + its tokens; a long text file's later chunks get
// no EOT of their own.
func TestOpenTokensPacksWithEOT(t *testing.T) {
	tok := gpt2Tok(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), "Hello world")
	writeFile(t, filepath.Join(dir, "b.jsonl"), "{\"text\":\"Hello\"}\n{\"text\":\" world\"}\n")
	s := "world"
	writeParquet(t, filepath.Join(dir, "c.parquet"), []textRow{{ID: 1, Text: &s}})
	got, err := ReadTokens(dir, tok, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{EOT, 15496, 995, EOT, 15496, EOT, 995, EOT, 6894}
	if !slices.Equal(got, want) {
		t.Fatalf("tokens %v, want %v", got, want)
	}
	if got, _ := ReadTokens(dir, tok, 4); !slices.Equal(got, want[:4]) {
		t.Fatalf("first 4 tokens: %v", got)
	}

	big := strings.Repeat("Hello world\n", TextChunk/12*2+5) // three chunks
	toks, err := ReadTokens(writeFile(t, filepath.Join(t.TempDir(), "big.txt"), big), tok, 0)
	if err != nil {
		t.Fatal(err)
	}
	whole := append([]int32{EOT}, tok.Encode(big)...)
	if !slices.Equal(toks, whole) {
		t.Fatalf("chunked file: %d tokens, %d EOTs; want %d tokens and one EOT", len(toks), count(toks, EOT), len(whole))
	}
}

func count(s []int32, v int32) (n int) {
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// TestOpenTokensShards passes llm.c shards through, one file or a
// directory of them, and refuses a directory mixing shards and text.
func TestOpenTokensShards(t *testing.T) {
	dir := t.TempDir()
	a := make([]int32, shardChunk+10) // more than one chunk
	for i := range a {
		a[i] = int32(i % VocabSize)
	}
	b := []int32{EOT, 1, 2, 3}
	if err := WriteShard(filepath.Join(dir, "x_000000.bin"), a); err != nil {
		t.Fatal(err)
	}
	if err := WriteShard(filepath.Join(dir, "x_000001.bin"), b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTokens(dir, nil, 0) // no tokenizer needed
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, append(slices.Clone(a), b...)) {
		t.Fatalf("read %d tokens, want %d", len(got), len(a)+len(b))
	}
	if got, _ := ReadTokens(filepath.Join(dir, "x_000001.bin"), nil, 3); !slices.Equal(got, b[:3]) {
		t.Fatalf("one shard, 3 tokens: %v", got)
	}
	writeFile(t, filepath.Join(dir, "notes.txt"), "hi")
	if _, err := ReadTokens(dir, gpt2Tok(t), 0); err == nil || !strings.Contains(err.Error(), "mixes 2 token shards with 1 text files") {
		t.Fatalf("mixed directory: %v", err)
	}
	if _, err := ReadTokens(writeFile(t, filepath.Join(t.TempDir(), "bad.bin"), "short"), nil, 0); err == nil || !strings.Contains(err.Error(), "not an llm.c token shard") {
		t.Fatalf("bad shard: %v", err)
	}
	if got, err := ReadTokens(writeFile(t, filepath.Join(t.TempDir(), "t.txt"), "Hello world"), nil, 0); err != nil || !slices.Equal(got, []int32{EOT, 15496, 995}) {
		t.Fatalf("text with the default tokenizer: %v, %v", got, err)
	}
}
