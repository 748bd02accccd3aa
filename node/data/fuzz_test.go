package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// FuzzJSONLText checks that decoding any line either fails cleanly or
// returns exactly the string a JSON encoder would read back.
func FuzzJSONLText(f *testing.F) {
	for _, s := range []string{`{"text":"a"}`, `{"text":"\u00e9\ud83e\udd80","x":[1,{}]}`, `{"text":1}`, `[]`, `null`, `{"text":"a"`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		text, err := jsonlText(line)
		if err != nil {
			return
		}
		again, err := jsonlText(must(json.Marshal(map[string]string{"text": text})))
		if err != nil || again != text {
			t.Fatalf("%q decoded to %q, which re-decodes to %q (%v)", line, text, again, err)
		}
		// The same line inside a JSONL file gives the same document.
		src := newJSONLSource("f.jsonl", bytes.NewReader(append(bytes.ReplaceAll(line, []byte("\n"), nil), '\n')), nil)
		if !bytes.Contains(line, []byte("\n")) {
			if d, err := src.Next(); err != nil || d.Text != text {
				t.Fatalf("as a file: %q, %v", d.Text, err)
			}
		}
	})
}

// FuzzParquet opens arbitrary bytes as a parquet file: every outcome is
// documents or an error naming the file, never a panic.
func FuzzParquet(f *testing.F) {
	var b bytes.Buffer
	w := parquet.NewGenericWriter[textRow](&b, parquet.MaxRowsPerRowGroup(3))
	for i := range 7 {
		s := fmt.Sprint("doc ", i)
		w.Write([]textRow{{ID: int64(i), Text: &s}})
	}
	w.Close()
	f.Add(b.Bytes())
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(dir, "f.parquet")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		src, err := OpenSource(path)
		if err != nil {
			return
		}
		defer src.Close()
		for range 1000 {
			if _, err := src.Next(); errors.Is(err, io.EOF) {
				return
			} else if err != nil {
				if !bytes.Contains([]byte(err.Error()), []byte(path)) {
					t.Fatalf("error without the file name: %v", err)
				}
				return
			}
		}
	})
}
