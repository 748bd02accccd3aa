package data

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Document is one piece of text to train on and where it came from.
type Document struct {
	Text string
	File string
	Line int64 // 1-based line Text starts on (text and JSONL files), else 0
	Row  int64 // 1-based row (parquet files), else 0
	// Continued marks a later chunk of a long text file: it continues the
	// previous Document rather than starting a new one (no EOT before it).
	Continued bool
}

// Where names the document's origin for error messages: "file:line" or
// "file row N".
func (d Document) Where() string {
	switch {
	case d.Line > 0:
		return fmt.Sprintf("%s:%d", d.File, d.Line)
	case d.Row > 0:
		return fmt.Sprintf("%s row %d", d.File, d.Row)
	}
	return d.File
}

// Source streams documents with bounded memory. Next returns io.EOF after
// the last one.
type Source interface {
	Next() (Document, error)
	Close() error
}

// Format is the kind of an input file, chosen by its extension.
type Format int

// The input formats. Text, JSONL and parquet hold documents; Shard holds
// tokens already.
const (
	FormatUnknown Format = iota
	FormatText           // .txt, .txt.gz: the whole file is one document
	FormatJSONL          // .jsonl, .jsonl.gz: one {"text": ...} object per line
	FormatParquet        // .parquet: a "text" string column (HF datasets)
	FormatShard          // .bin: an llm.c token shard
)

var formatNames = [...]string{"unknown", "text", "jsonl", "parquet", "llm.c shard"}

func (f Format) String() string {
	if f < 0 || int(f) >= len(formatNames) {
		return fmt.Sprintf("Format(%d)", int(f))
	}
	return formatNames[f]
}

// MarshalText writes a Format as its name in JSON.
func (f Format) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// FormatOf returns the format of path by its extension and whether the
// file is gzip-compressed.
func FormatOf(path string) (f Format, gzipped bool) {
	name := strings.ToLower(filepath.Base(path))
	if n, ok := strings.CutSuffix(name, ".gz"); ok {
		name, gzipped = n, true
	}
	switch filepath.Ext(name) {
	case ".txt":
		return FormatText, gzipped
	case ".jsonl":
		return FormatJSONL, gzipped
	case ".parquet":
		if !gzipped {
			return FormatParquet, false
		}
	case ".bin":
		if !gzipped {
			return FormatShard, false
		}
	}
	return FormatUnknown, false
}

// InputFile is one file of an input.
type InputFile struct {
	Path    string
	Format  Format
	Gzipped bool
	Size    int64
	ModTime time.Time
}

// Inputs is what a path given as training data holds.
type Inputs struct {
	Text    []InputFile // text, JSONL and parquet files, sorted by path
	Shards  []InputFile // llm.c .bin shards, sorted by path
	Skipped []string    // files of other types (hidden files are not listed)
	// Binary are the .txt files that hold binary data (looksBinary):
	// skipped, and named so that the caller can warn.
	Binary []string
	Corpus *CorpusInfo // set when the path was BuiltinCorpus
}

// Bytes is the total size of the text files.
func (in Inputs) Bytes() int64 {
	var n int64
	for _, f := range in.Text {
		n += f.Size
	}
	return n
}

// warnBinary tells warn (if set) of every file skipped as binary.
func (in Inputs) warnBinary(warn func(path, reason string)) {
	if warn == nil {
		return
	}
	for _, p := range in.Binary {
		warn(p, "named .txt but holds binary data (NUL bytes or mostly invalid UTF-8): skipped")
	}
}

// ListInputs lists the files of path: a file, BuiltinCorpus, or a directory
// walked recursively (symlinks to files followed, hidden files and
// directories skipped, files of unknown types listed in Skipped).
func ListInputs(path string) (Inputs, error) {
	if path == BuiltinCorpus {
		c, err := builtinCorpus()
		if err != nil {
			return Inputs{}, err
		}
		return Inputs{Text: c.files, Corpus: &c.info}, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return Inputs{}, fmt.Errorf("data input: %w", err)
	}
	var in Inputs
	if !st.IsDir() {
		f := inputFile(path, st)
		if bin, err := looksBinary(f); err != nil {
			return Inputs{}, err
		} else if bin {
			return Inputs{}, fmt.Errorf("data input %s: holds binary data, not text (NUL bytes or mostly invalid UTF-8 in its first %d bytes)", path, sniffBytes)
		}
		switch f.Format {
		case FormatUnknown:
			return Inputs{}, fmt.Errorf("data input %s: unsupported file type (want .txt, .jsonl, .parquet, .bin, or .txt.gz/.jsonl.gz)", path)
		case FormatShard:
			in.Shards = append(in.Shards, f)
		default:
			in.Text = append(in.Text, f)
		}
		return in, nil
	}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != path && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		st, err := os.Stat(p) // follows symlinks
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			in.Skipped = append(in.Skipped, p)
			return nil
		}
		f := inputFile(p, st)
		if bin, err := looksBinary(f); err != nil {
			return err
		} else if bin {
			in.Binary = append(in.Binary, p)
			return nil
		}
		switch f.Format {
		case FormatUnknown:
			in.Skipped = append(in.Skipped, p)
		case FormatShard:
			in.Shards = append(in.Shards, f)
		default:
			in.Text = append(in.Text, f)
		}
		return nil
	})
	if err != nil {
		return Inputs{}, fmt.Errorf("data input %s: %w", path, err)
	}
	byPath := func(a, b InputFile) int { return strings.Compare(a.Path, b.Path) }
	slices.SortFunc(in.Text, byPath)
	slices.SortFunc(in.Shards, byPath)
	slices.Sort(in.Skipped)
	slices.Sort(in.Binary)
	return in, nil
}

// sniffBytes is how much of a .txt file looksBinary reads.
const sniffBytes = 8192

// looksBinary says whether f, a plain .txt file (other formats are not
// sniffed: JSONL and parquet fail on their own), holds binary data: a NUL
// byte or more than one invalid UTF-8 byte in 8 within its first
// sniffBytes (git's rule for binary files is the NUL byte alone; invalid
// UTF-8 also catches UTF-16 and Latin-1-free binaries).
func looksBinary(f InputFile) (bool, error) {
	if f.Format != FormatText || f.Gzipped {
		return false, nil
	}
	r, err := os.Open(f.Path)
	if err != nil {
		return false, fmt.Errorf("data input: %w", err)
	}
	defer r.Close()
	buf := make([]byte, sniffBytes)
	n, err := io.ReadFull(r, buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return false, fmt.Errorf("data input %s: %w", f.Path, err)
	}
	buf = buf[:n]
	if bytes.IndexByte(buf, 0) >= 0 {
		return true, nil
	}
	bad := 0
	for i := 0; i < len(buf); {
		r, size := utf8.DecodeRune(buf[i:])
		// A rune cut by the end of the sniffed bytes is not bad.
		if r == utf8.RuneError && size == 1 && len(buf)-i >= utf8.UTFMax {
			bad++
		}
		i += size
	}
	return bad*8 > len(buf), nil
}

func inputFile(path string, st os.FileInfo) InputFile {
	f, gz := FormatOf(path)
	return InputFile{Path: path, Format: f, Gzipped: gz, Size: st.Size(), ModTime: st.ModTime()}
}

// OpenSource opens the documents of path (see ListInputs), file after file
// in path order. It is an error for path to hold no text files.
func OpenSource(path string) (Source, error) {
	in, err := ListInputs(path)
	if err != nil {
		return nil, err
	}
	return in.open(path)
}

func (in Inputs) open(path string) (Source, error) {
	if len(in.Text) == 0 {
		if len(in.Shards) > 0 {
			return nil, fmt.Errorf("data input %s: holds llm.c token shards, not text (use it as tokens directly)", path)
		}
		return nil, fmt.Errorf("data input %s: no .txt, .jsonl or .parquet files (%d other files skipped)", path, len(in.Skipped))
	}
	return &multiSource{files: in.Text}, nil
}

// openFile opens one text, JSONL or parquet file as a Source.
func openFile(f InputFile) (Source, error) {
	switch f.Format {
	case FormatText, FormatJSONL:
		r, err := openStream(f)
		if err != nil {
			return nil, err
		}
		if f.Format == FormatText {
			return newTextSource(f.Path, r, r.Close), nil
		}
		return newJSONLSource(f.Path, r, r.Close), nil
	case FormatParquet:
		return openParquet(f.Path)
	}
	return nil, fmt.Errorf("%s: %s files hold no documents", f.Path, f.Format)
}

// multiSource reads files one after another, one open at a time.
type multiSource struct {
	files []InputFile
	cur   Source
	done  int64 // bytes of the files finished
}

func (m *multiSource) Next() (Document, error) {
	for {
		if m.cur == nil {
			if len(m.files) == 0 {
				return Document{}, io.EOF
			}
			s, err := openFile(m.files[0])
			if err != nil {
				return Document{}, err
			}
			m.cur = s
		}
		d, err := m.cur.Next()
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, io.EOF) {
			return Document{}, err
		}
		if err := m.cur.Close(); err != nil {
			return Document{}, fmt.Errorf("%s: %w", m.files[0].Path, err)
		}
		m.done += m.files[0].Size
		m.cur, m.files = nil, m.files[1:]
	}
}

// inputPos is how many bytes of the input files have been consumed, for
// progress reports.
func (m *multiSource) inputPos() int64 {
	if p, ok := m.cur.(interface{ inputPos() int64 }); ok {
		return m.done + p.inputPos()
	}
	return m.done
}

func (m *multiSource) Close() error {
	m.files = nil
	if m.cur != nil {
		err := m.cur.Close()
		m.cur = nil
		return err
	}
	return nil
}
