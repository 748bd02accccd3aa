package data

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
)

// readAll drains a Source.
func readAll(t *testing.T, s Source) []Document {
	t.Helper()
	defer s.Close()
	var docs []Document
	for {
		d, err := s.Next()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestTextSourceChunks streams a text file several times TextChunk long:
// the chunks rebuild the file, each fits TextChunk, only the first starts
// the document, and each reports the line it starts on.
func TestTextSourceChunks(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() < 3*TextChunk+1000; i++ {
		fmt.Fprintf(&b, "line %d: 日本語 text with some words\n", i+1)
	}
	text := b.String()
	path := writeFile(t, filepath.Join(t.TempDir(), "big.txt"), text)
	docs := readAll(t, must(OpenSource(path)))
	if len(docs) != 4 {
		t.Fatalf("%d chunks, want 4", len(docs))
	}
	var joined strings.Builder
	for i, d := range docs {
		if len(d.Text) > TextChunk || !utf8.ValidString(d.Text) {
			t.Errorf("chunk %d: %d bytes, valid UTF-8 %v", i, len(d.Text), utf8.ValidString(d.Text))
		}
		if d.Continued != (i > 0) {
			t.Errorf("chunk %d: Continued = %v", i, d.Continued)
		}
		if want := fmt.Sprintf("line %d:", d.Line); !strings.HasPrefix(d.Text, want) {
			t.Errorf("chunk %d says line %d but starts %.20q", i, d.Line, d.Text)
		}
		joined.WriteString(d.Text)
	}
	if joined.String() != text {
		t.Fatal("chunks do not rebuild the file")
	}

	// A file without newlines is still cut, at character boundaries.
	long := strings.Repeat("é", TextChunk)
	docs = readAll(t, must(OpenSource(writeFile(t, filepath.Join(t.TempDir(), "one.txt"), long))))
	if len(docs) != 2 || docs[0].Text+docs[1].Text != long || !utf8.ValidString(docs[0].Text) {
		t.Fatalf("newline-free file: %d chunks", len(docs))
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestJSONLSource(t *testing.T) {
	dir := t.TempDir()
	good := "{\"text\": \"first\", \"id\": 1}\n\n{\"id\": 2, \"text\": \"sec\\nond 🦀\"}\r\n{\"text\":\"\"}\n{\"text\":\"last, no newline\"}"
	cases := []struct {
		name, content string
		want          []string // texts, or
		err           string   // an error naming file:line
	}{
		{"good.jsonl", good, []string{"first", "sec\nond 🦀", "", "last, no newline"}, ""},
		{"good.jsonl.gz", gzipped(t, good), []string{"first", "sec\nond 🦀", "", "last, no newline"}, ""},
		{"malformed.jsonl", "{\"text\":\"a\"}\n{\"text\": \"b\"\n", nil, "malformed.jsonl:2: malformed JSON"},
		{"notext.jsonl", "{\"text\":\"a\"}\n{\"body\":\"b\"}\n", nil, "notext.jsonl:2: no \"text\" field"},
		{"number.jsonl", "{\"text\":7}\n", nil, "number.jsonl:1: \"text\" is a number, want a string"},
		{"null.jsonl", "{\"text\":null}\n", nil, "null.jsonl:1: \"text\" is null"},
		{"array.jsonl", "[\"text\"]\n", nil, "array.jsonl:1: want a JSON object"},
		{"case.jsonl", "{\"Text\":\"a\"}\n", nil, "case.jsonl:1: no \"text\" field"},
		{"binary.jsonl", "\x00\x01\x02garbage\n", nil, "binary.jsonl:1: malformed JSON"},
		{"badgzip.jsonl.gz", "not gzip", nil, "badgzip.jsonl.gz: gzip"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(dir, c.name), c.content)
			src, err := OpenSource(path)
			var texts []string
			for err == nil {
				var d Document
				if d, err = src.Next(); err == nil {
					texts = append(texts, d.Text)
				}
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, c.err)) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if !errors.Is(err, io.EOF) || !slices.Equal(texts, c.want) {
				t.Fatalf("read %q (%v), want %q", texts, err, c.want)
			}
		})
	}
}

func TestJSONLLineCap(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "long.jsonl"), "{\"text\":\"ok\"}\n{\"text\":\""+strings.Repeat("x", 5000)+"\"}\n")
	src, _ := openStream(InputFile{Path: path})
	s := newJSONLSource(path, src, src.Close)
	s.max = 1000
	defer s.Close()
	if d, err := s.Next(); err != nil || d.Text != "ok" || d.Line != 1 {
		t.Fatalf("first line: %+v %v", d, err)
	}
	if _, err := s.Next(); err == nil || !strings.Contains(err.Error(), "long.jsonl:2: line longer than 1000 bytes") {
		t.Fatalf("long line: %v", err)
	}
}

type textRow struct {
	ID   int64   `parquet:"id"`
	Text *string `parquet:"text,optional"`
}

func writeParquet[T any](t *testing.T, path string, rows []T, opts ...parquet.WriterOption) string {
	t.Helper()
	var b bytes.Buffer
	w := parquet.NewGenericWriter[T](&b, opts...)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, path, b.String())
}

func TestParquetSource(t *testing.T) {
	dir := t.TempDir()
	var rows []textRow
	var want []string
	for i := range 250 {
		s := fmt.Sprintf("document %d: %s", i, strings.Repeat("ü", i%7))
		if i%50 == 7 {
			rows = append(rows, textRow{ID: int64(i)}) // null text: skipped
			continue
		}
		rows = append(rows, textRow{ID: int64(i), Text: &s})
		want = append(want, s)
	}
	good := writeParquet(t, filepath.Join(dir, "good.parquet"), rows, parquet.MaxRowsPerRowGroup(60), parquet.PageBufferSize(512))
	docs := readAll(t, must(OpenSource(good)))
	var got []string
	for _, d := range docs {
		got = append(got, d.Text)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read %d texts, want %d; first %q", len(got), len(want), got[:min(3, len(got))])
	}
	if d := docs[10]; d.Row != 12 || d.Where() != good+" row 12" { // row 8 was null
		t.Errorf("12th row reported as %q", d.Where())
	}

	type other struct {
		Body string `parquet:"body"`
		N    int64  `parquet:"n"`
	}
	type numeric struct {
		Text int64 `parquet:"text"`
	}
	raw, _ := os.ReadFile(good)
	bad := []struct{ path, want string }{
		{writeParquet(t, filepath.Join(dir, "nocol.parquet"), []other{{"a", 1}}), `no "text" column (columns: ["body" "n"])`},
		{writeParquet(t, filepath.Join(dir, "numeric.parquet"), []numeric{{3}}), `the "text" column is INT64, want a string`},
		{writeFile(t, filepath.Join(dir, "garbage.parquet"), "definitely not parquet, just text"), "not a parquet file"},
		{writeFile(t, filepath.Join(dir, "short.parquet"), "PAR1"), "not a parquet file"},
		{writeFile(t, filepath.Join(dir, "truncated.parquet"), string(raw[:len(raw)/2])), "not a parquet file"},
		{writeFile(t, filepath.Join(dir, "hugefooter.parquet"), "PAR1"+strings.Repeat("x", 100)+"\xff\xff\xff\x7fPAR1"), "footer of"},
	}
	for _, b := range bad {
		src, err := OpenSource(b.path)
		if err == nil {
			_, err = src.Next()
			src.Close()
		}
		if err == nil || !strings.Contains(err.Error(), b.want) || !strings.Contains(err.Error(), b.path) {
			t.Errorf("%s: error %v, want one naming the file and saying %q", filepath.Base(b.path), err, b.want)
		}
	}

	// Corrupt page data (the footer intact): an error, never a crash.
	corrupt := slices.Clone(raw)
	for i := 4; i < len(corrupt)/2; i += 3 {
		corrupt[i] ^= 0x5a
	}
	src, err := OpenSource(writeFile(t, filepath.Join(dir, "corrupt.parquet"), string(corrupt)))
	if err == nil {
		for err == nil {
			_, err = src.Next()
		}
		src.Close()
	}
	if errors.Is(err, io.EOF) {
		t.Error("corrupt parquet pages read without error")
	}
}

// TestListInputs walks a directory: sorted, recursive, hidden files and
// directories skipped, unknown types counted, shards kept apart.
func TestListInputs(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b/2.txt", "a.jsonl", "b/1.txt.gz", "c.parquet", "notes.md", ".hidden.txt", ".git/x.txt", "s/train_000000.bin", "img.png"} {
		writeFile(t, filepath.Join(dir, name), "x")
	}
	in, err := ListInputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, f := range in.Text {
		rel, _ := filepath.Rel(dir, f.Path)
		text = append(text, rel+"/"+f.Format.String())
	}
	if want := []string{"a.jsonl/jsonl", "b/1.txt.gz/text", "b/2.txt/text", "c.parquet/parquet"}; !slices.Equal(text, want) {
		t.Errorf("text files %q, want %q", text, want)
	}
	if len(in.Shards) != 1 || len(in.Skipped) != 2 {
		t.Errorf("%d shards, %d skipped (%q), want 1 and 2", len(in.Shards), len(in.Skipped), in.Skipped)
	}
	if _, err := OpenSource(filepath.Join(dir, "notes.md")); err == nil || !strings.Contains(err.Error(), "unsupported file type") {
		t.Errorf("a single .md file: %v", err)
	}
	if _, err := OpenSource(filepath.Join(dir, "s")); err == nil || !strings.Contains(err.Error(), "token shards, not text") {
		t.Errorf("a shard directory as text: %v", err)
	}
	empty := t.TempDir()
	writeFile(t, filepath.Join(empty, "x.csv"), "a,b")
	if _, err := OpenSource(empty); err == nil || !strings.Contains(err.Error(), "1 other files skipped") {
		t.Errorf("a directory without text: %v", err)
	}
}

// TestOpenSourceDirectory reads a mixed directory in path order, gzip
// included, naming each document's origin.
func TestOpenSourceDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "1.txt"), "alpha\nbeta\n")
	writeFile(t, filepath.Join(dir, "2.jsonl.gz"), gzipped(t, "{\"text\":\"gamma\"}\n{\"text\":\"delta\"}\n"))
	writeFile(t, filepath.Join(dir, "3", "empty.txt"), "")
	writeFile(t, filepath.Join(dir, "4.txt.gz"), gzipped(t, "epsilon"))
	docs := readAll(t, must(OpenSource(dir)))
	var got []string
	for _, d := range docs {
		rel, _ := filepath.Rel(dir, d.Where())
		got = append(got, rel+"="+d.Text)
	}
	want := []string{"1.txt:1=alpha\nbeta\n", "2.jsonl.gz:1=gamma", "2.jsonl.gz:2=delta", "4.txt.gz:1=epsilon"}
	if !slices.Equal(got, want) {
		t.Fatalf("documents %q, want %q", got, want)
	}
}

// A file named .txt that holds binary data is skipped and named, in a
// directory, and refused given alone; text in UTF-8, whatever its
// script, is kept.
func TestBinaryTxtSkipped(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("ok.txt", []byte(strings.Repeat("héllo wörld, 你好, привет\n", 500)))
	nul := write("nul.txt", append([]byte("ELF"), make([]byte, 100)...))
	latin := make([]byte, 4000)
	for i := range latin {
		latin[i] = byte(128 + i%128) // no valid UTF-8 sequence
	}
	junk := write("junk.txt", latin)
	in, err := ListInputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Text) != 1 || filepath.Base(in.Text[0].Path) != "ok.txt" || fmt.Sprint(in.Binary) != fmt.Sprint([]string{junk, nul}) {
		t.Errorf("text %v, binary %v", in.Text, in.Binary)
	}
	if _, err := ListInputs(nul); err == nil || !strings.Contains(err.Error(), "binary") {
		t.Errorf("a binary .txt given alone: %v", err)
	}
	var warned []string
	if _, err := Prepare(context.Background(), PrepareOptions{In: dir, Out: filepath.Join(t.TempDir(), "out"), ValFraction: -1,
		Warn: func(p, _ string) { warned = append(warned, p) }}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(warned) != fmt.Sprint(in.Binary) {
		t.Errorf("Prepare warned of %v, want %v", warned, in.Binary)
	}
}
