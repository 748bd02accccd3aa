package data

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// shardChunk is how many tokens a TokenReader over shards yields at a time.
const shardChunk = 1 << 20

// TokenReader yields a token stream in chunks. Next returns io.EOF after
// the last chunk.
type TokenReader interface {
	Next() ([]int32, error)
	Close() error
}

// OpenTokens opens path (see ListInputs) as tokens. llm.c .bin shards (one
// file, or every .bin in a directory, in path order) are passed through.
// Text inputs are tokenized with tok (GPT2() if nil, loaded only for text)
// the way llm.c's data scripts do it:
// each document becomes [EOT] + Encode(text), so EOT starts, and thereby
// separates, every document. A directory may not mix shards and text.
func OpenTokens(path string, tok *Tokenizer) (TokenReader, error) {
	in, err := ListInputs(path)
	if err != nil {
		return nil, err
	}
	if len(in.Text) > 0 && len(in.Shards) > 0 {
		return nil, fmt.Errorf("data input %s: mixes %d token shards with %d text files; keep them in separate directories", path, len(in.Shards), len(in.Text))
	}
	if len(in.Shards) > 0 {
		return &shardReader{files: in.Shards}, nil
	}
	if tok == nil {
		if tok, err = GPT2(); err != nil {
			return nil, err
		}
	}
	src, err := in.open(path)
	if err != nil {
		return nil, err
	}
	return &textTokens{src: src, tok: tok}, nil
}

// ReadTokens reads the first maxTokens tokens of path (all when
// maxTokens <= 0), as OpenTokens yields them.
func ReadTokens(path string, tok *Tokenizer, maxTokens int64) ([]int32, error) {
	r, err := OpenTokens(path, tok)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []int32
	for maxTokens <= 0 || int64(len(out)) < maxTokens {
		chunk, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if maxTokens > 0 {
			chunk = chunk[:min(int64(len(chunk)), maxTokens-int64(len(out)))]
		}
		out = append(out, chunk...)
	}
	return out, nil
}

// textTokens tokenizes a Source, one document (or text chunk) per Next.
type textTokens struct {
	src Source
	tok *Tokenizer
}

func (t *textTokens) Next() ([]int32, error) {
	d, err := t.src.Next()
	if err != nil {
		return nil, err
	}
	if d.Continued {
		return t.tok.Encode(d.Text), nil
	}
	return append([]int32{EOT}, t.tok.Encode(d.Text)...), nil
}

func (t *textTokens) Close() error { return t.src.Close() }

// shardReader streams llm.c shards, one file open at a time.
type shardReader struct {
	files []InputFile
	f     *os.File
	r     *bufio.Reader
	path  string
	left  int64 // tokens left in the open shard
	raw   []byte
}

func (s *shardReader) Next() ([]int32, error) {
	for s.left == 0 {
		if err := s.closeFile(); err != nil {
			return nil, err
		}
		if len(s.files) == 0 {
			return nil, io.EOF
		}
		if err := s.open(s.files[0].Path); err != nil {
			return nil, err
		}
		s.files = s.files[1:]
	}
	n := min(s.left, shardChunk)
	if cap(s.raw) < int(2*n) {
		s.raw = make([]byte, 2*n)
	}
	raw := s.raw[:2*n]
	if _, err := io.ReadFull(s.r, raw); err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	s.left -= n
	toks := make([]int32, n)
	for i := range toks {
		toks[i] = int32(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return toks, nil
}

func (s *shardReader) open(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	info, err := readShardHeader(f, path)
	if err != nil {
		f.Close()
		return err
	}
	s.f, s.path, s.left = f, path, info.Tokens
	s.r = bufio.NewReaderSize(io.NewSectionReader(f, ShardHeaderBytes, 2*info.Tokens), 1<<20)
	return nil
}

func (s *shardReader) closeFile() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f, s.r = nil, nil
	if err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	return nil
}

func (s *shardReader) Close() error {
	s.files = nil
	return s.closeFile()
}
