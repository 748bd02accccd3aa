package data

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
)

// TextChunk is the most text a .txt file yields per Document: a large file
// is streamed as chunks cut at line boundaries, never held whole.
const TextChunk = 1 << 20

// countingReader counts the bytes read from the file (before gzip), for
// progress reports.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// stream is an open text or JSONL file, decompressed if gzipped.
type stream struct {
	io.Reader
	file  *os.File
	count *countingReader
	gz    *gzip.Reader
}

func (s *stream) inputPos() int64 { return s.count.n }

func (s *stream) Close() error {
	var err error
	if s.gz != nil {
		err = s.gz.Close()
	}
	return errors.Join(err, s.file.Close())
}

func openStream(f InputFile) (*stream, error) {
	file, err := os.Open(f.Path)
	if err != nil {
		return nil, err
	}
	s := &stream{file: file, count: &countingReader{r: file}}
	s.Reader = s.count
	if f.Gzipped {
		if s.gz, err = gzip.NewReader(s.count); err != nil {
			file.Close()
			return nil, fmt.Errorf("%s: gzip: %w", f.Path, err)
		}
		s.Reader = s.gz
	}
	return s, nil
}

// textSource yields a text file as one document, in chunks of at most
// TextChunk bytes.
type textSource struct {
	path  string
	r     io.Reader
	close func() error
	pos   interface{ inputPos() int64 }
	buf   []byte // read but not yet returned
	eof   bool
	line  int64 // line the next chunk starts on
	first bool  // the next chunk is the document's first
}

func newTextSource(path string, r io.Reader, closeFn func() error) *textSource {
	s := &textSource{path: path, r: r, close: closeFn, line: 1, first: true}
	s.pos, _ = r.(interface{ inputPos() int64 })
	return s
}

func (s *textSource) inputPos() int64 {
	if s.pos == nil {
		return 0
	}
	return s.pos.inputPos()
}

func (s *textSource) Next() (Document, error) {
	// Hold one byte beyond a chunk, so the cut can look at what follows it.
	for !s.eof && len(s.buf) <= TextChunk {
		if cap(s.buf) < TextChunk+1 {
			s.buf = append(make([]byte, 0, TextChunk+1), s.buf...)
		}
		n, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf = s.buf[:len(s.buf)+n]
		if errors.Is(err, io.EOF) {
			s.eof = true
		} else if err != nil {
			return Document{}, fmt.Errorf("%s: %w", s.path, err)
		}
	}
	if len(s.buf) == 0 {
		return Document{}, io.EOF // an empty file holds no document
	}
	n := len(s.buf)
	if n > TextChunk {
		n = safeCut(s.buf, TextChunk)
	}
	d := Document{Text: string(s.buf[:n]), File: s.path, Line: s.line, Continued: !s.first}
	s.first = false
	s.line += int64(bytes.Count(s.buf[:n], []byte{'\n'}))
	s.buf = append(s.buf[:0], s.buf[n:]...)
	return d, nil
}

func (s *textSource) Close() error {
	if s.close == nil {
		return nil
	}
	err := s.close()
	s.close = nil
	return err
}
