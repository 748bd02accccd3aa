package data

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Dataset is a split of prepared token shards, memory-mapped so that a
// corpus of any size costs page cache, not heap. It is cut into windows of
// seq+1 tokens exactly as Windows cuts one token slice, shard by shard (no
// window spans two shards), and window i is addressed by one global index.
type Dataset struct {
	seq    int
	shards []mappedShard
	starts []int64 // starts[s] = global index of shard s's first window
	total  int64
}

type mappedShard struct {
	path   string
	data   []byte // the whole file, mapped read-only
	tokens int64
}

// ShardPaths lists the llm.c shards of split ("train" or "val") in dir,
// named SPLIT_NNNNNN.bin by Prepare and by llm.c's own scripts (which use
// names like fineweb_train_000001.bin: any name containing "_SPLIT_"
// also counts). A path that is itself a .bin file is its own list.
func ShardPaths(dir, split string) ([]string, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	} else if !st.IsDir() {
		return []string{dir}, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	var paths []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".bin") {
			continue
		}
		if strings.HasPrefix(n, split+"_") || strings.Contains(n, "_"+split+"_") {
			paths = append(paths, filepath.Join(dir, n))
		}
	}
	sort.Strings(paths)
	return paths, nil
}

// OpenDataset maps the shards of split in dir (see ShardPaths) and cuts them
// into windows of seq+1 tokens.
func OpenDataset(dir, split string, seq int) (*Dataset, error) {
	if seq < 1 {
		return nil, fmt.Errorf("dataset: sequence length must be >= 1, got %d", seq)
	}
	paths, err := ShardPaths(dir, split)
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("dataset: no %s shards (%s_*.bin) in %s", split, split, dir)
	}
	d := &Dataset{seq: seq}
	for _, p := range paths {
		sh, err := mapShard(p)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("dataset: %w", err)
		}
		d.shards = append(d.shards, sh)
		d.starts = append(d.starts, d.total)
		d.total += int64(WindowCount(int(sh.tokens), seq))
	}
	if d.total == 0 {
		d.Close()
		return nil, fmt.Errorf("dataset: the %s shards in %s hold no full window of %d tokens", split, dir, seq+1)
	}
	return d, nil
}

func mapShard(path string) (mappedShard, error) {
	f, err := os.Open(path)
	if err != nil {
		return mappedShard{}, err
	}
	defer f.Close()
	info, err := readShardHeader(f, path)
	if err != nil {
		return mappedShard{}, err
	}
	size := ShardHeaderBytes + 2*info.Tokens
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return mappedShard{}, fmt.Errorf("%s: mmap: %w", path, err)
	}
	return mappedShard{path: path, data: b, tokens: info.Tokens}, nil
}

// Close unmaps the shards.
func (d *Dataset) Close() error {
	var first error
	for _, s := range d.shards {
		if err := syscall.Munmap(s.data); err != nil && first == nil {
			first = fmt.Errorf("dataset: unmap %s: %w", s.path, err)
		}
	}
	d.shards = nil
	return first
}

// Len is the number of windows.
func (d *Dataset) Len() int64 { return d.total }

// SeqLen is T, the tokens predicted per window.
func (d *Dataset) SeqLen() int { return d.seq }

// Tokens is the number of tokens in all shards.
func (d *Dataset) Tokens() int64 {
	var n int64
	for _, s := range d.shards {
		n += s.tokens
	}
	return n
}

// Window writes window i's inputs into x and targets into y (seq tokens
// each: x is the window without its last token, y without its first).
func (d *Dataset) Window(i int64, x, y []int32) error {
	if i < 0 || i >= d.total {
		return fmt.Errorf("dataset: window %d outside [0, %d)", i, d.total)
	}
	if len(x) != d.seq || len(y) != d.seq {
		return fmt.Errorf("dataset: window buffers of %d and %d tokens, want %d", len(x), len(y), d.seq)
	}
	s := sort.Search(len(d.starts), func(s int) bool { return d.starts[s] > i }) - 1
	sh := d.shards[s]
	off := ShardHeaderBytes + 2*(i-d.starts[s])*int64(d.seq)
	tok := func(j int) int32 { return int32(binary.LittleEndian.Uint16(sh.data[off+2*int64(j):])) }
	for j := 0; j < d.seq; j++ {
		x[j] = tok(j)
		y[j] = tok(j + 1)
	}
	return nil
}
