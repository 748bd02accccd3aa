package data

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// shardWriter streams one split's tokens into llm.c shards of at most max
// tokens. Shards are written as hidden temporary files (which input
// listings skip) and get their final names only in commit, so an
// interrupted prepare leaves nothing that looks like a complete shard.
// Memory use is a write buffer, whatever the shard size.
type shardWriter struct {
	dir   string
	max   int64
	f     *os.File
	bw    *bufio.Writer
	n     int64 // tokens in the open shard
	total int64
	parts []shardPart // finished shards, not yet renamed
	raw   []byte
}

type shardPart struct {
	tmp    string
	tokens int64
}

func newShardWriter(dir string, max int64) *shardWriter {
	return &shardWriter{dir: dir, max: max}
}

// write appends tokens, starting a new shard when the open one is full.
// A shard is started only for a token that needs it, so after any write
// the open shard holds at least one token.
func (w *shardWriter) write(toks []int32) error {
	for len(toks) > 0 {
		if w.f != nil && w.n == w.max {
			if err := w.finishPart(); err != nil {
				return err
			}
		}
		if w.f == nil {
			if err := w.openPart(); err != nil {
				return err
			}
		}
		k := min(int64(len(toks)), w.max-w.n)
		if cap(w.raw) < int(2*k) {
			w.raw = make([]byte, 2*k)
		}
		raw := w.raw[:2*k]
		for i, t := range toks[:k] {
			binary.LittleEndian.PutUint16(raw[2*i:], uint16(t))
		}
		if _, err := w.bw.Write(raw); err != nil {
			return fmt.Errorf("write shard %s: %w", w.f.Name(), err)
		}
		w.n += k
		w.total += k
		toks = toks[k:]
	}
	return nil
}

func (w *shardWriter) openPart() error {
	f, err := os.CreateTemp(w.dir, ".shard-*.tmp")
	if err != nil {
		return fmt.Errorf("create shard: %w", err)
	}
	w.f, w.n = f, 0
	if w.bw == nil {
		w.bw = bufio.NewWriterSize(f, 1<<20)
	} else {
		w.bw.Reset(f)
	}
	if _, err := w.bw.Write(make([]byte, ShardHeaderBytes)); err != nil { // the header, filled in later
		return fmt.Errorf("write shard %s: %w", f.Name(), err)
	}
	return nil
}

// finishPart writes the open shard's header, syncs and closes it.
func (w *shardWriter) finishPart() error {
	f := w.f
	w.f = nil
	var hdr [256]int32
	hdr[0], hdr[1], hdr[2] = ShardMagic, ShardVersion, int32(w.n)
	err := w.bw.Flush()
	if err == nil {
		err = binary.Write(io.NewOffsetWriter(f, 0), binary.LittleEndian, &hdr)
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write shard %s: %w", f.Name(), err)
	}
	w.parts = append(w.parts, shardPart{tmp: f.Name(), tokens: w.n})
	return nil
}

// cutTail removes the last k tokens from the open shard and returns them
// (k is at most the open shard's token count).
func (w *shardWriter) cutTail(k int64) ([]int32, error) {
	if w.f == nil || k > w.n {
		return nil, fmt.Errorf("cut %d tokens: the open shard holds %d", k, w.n)
	}
	if err := w.bw.Flush(); err != nil {
		return nil, fmt.Errorf("write shard %s: %w", w.f.Name(), err)
	}
	end := ShardHeaderBytes + 2*w.n
	raw := make([]byte, 2*k)
	if _, err := w.f.ReadAt(raw, end-2*k); err != nil {
		return nil, fmt.Errorf("read back shard %s: %w", w.f.Name(), err)
	}
	if err := w.f.Truncate(end - 2*k); err != nil {
		return nil, fmt.Errorf("truncate shard %s: %w", w.f.Name(), err)
	}
	if _, err := w.f.Seek(end-2*k, io.SeekStart); err != nil {
		return nil, fmt.Errorf("truncate shard %s: %w", w.f.Name(), err)
	}
	w.n -= k
	w.total -= k
	toks := make([]int32, k)
	for i := range toks {
		toks[i] = int32(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return toks, nil
}

// commit finishes the open shard and renames every shard to
// prefix_NNNNNN.bin, in order.
func (w *shardWriter) commit(prefix string) ([]ShardEntry, error) {
	if w.f != nil {
		if err := w.finishPart(); err != nil {
			return nil, err
		}
	}
	var out []ShardEntry
	for i, p := range w.parts {
		name := fmt.Sprintf("%s_%06d.bin", prefix, i)
		if err := os.Rename(p.tmp, filepath.Join(w.dir, name)); err != nil {
			return nil, fmt.Errorf("commit shard: %w", err)
		}
		out = append(out, ShardEntry{File: name, Tokens: p.tokens})
	}
	w.parts = nil
	return out, nil
}

// abort removes every shard not yet committed.
func (w *shardWriter) abort() error {
	var errs []error
	if w.f != nil {
		errs = append(errs, w.f.Close(), os.Remove(w.f.Name()))
		w.f = nil
	}
	for _, p := range w.parts {
		errs = append(errs, os.Remove(p.tmp))
	}
	w.parts = nil
	return errors.Join(errs...)
}

// syncDir fsyncs a directory so the renames inside it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
