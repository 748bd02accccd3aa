package data

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/dtrain-dev/dtrain/torch"
)

// llm.c token shards: a header of 256 little-endian int32 (magic, version,
// token count, then zeros) followed by the tokens as little-endian uint16.
const (
	ShardMagic       = 20240520
	ShardVersion     = 1
	ShardHeaderBytes = 256 * 4
)

// ErrNotShard is wrapped by errors for files that are not llm.c shards.
var ErrNotShard = errors.New("not an llm.c token shard")

// ShardInfo is what a shard's header says.
type ShardInfo struct {
	Tokens int64 // token count in the header
}

// readShardHeader validates the header against the file size.
func readShardHeader(f *os.File, path string) (ShardInfo, error) {
	st, err := f.Stat()
	if err != nil {
		return ShardInfo{}, err
	}
	var hdr [256]int32
	if st.Size() < ShardHeaderBytes {
		return ShardInfo{}, fmt.Errorf("%s: %w: %d bytes, shorter than the %d-byte header", path, ErrNotShard, st.Size(), ShardHeaderBytes)
	}
	if err := binary.Read(io.NewSectionReader(f, 0, ShardHeaderBytes), binary.LittleEndian, &hdr); err != nil {
		return ShardInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	if hdr[0] != ShardMagic {
		return ShardInfo{}, fmt.Errorf("%s: %w: magic %d, want %d", path, ErrNotShard, hdr[0], ShardMagic)
	}
	if hdr[1] != ShardVersion {
		return ShardInfo{}, fmt.Errorf("%s: unsupported shard version %d (want %d: uint16 tokens)", path, hdr[1], ShardVersion)
	}
	n := int64(hdr[2])
	if n < 0 {
		return ShardInfo{}, fmt.Errorf("%s: negative token count %d", path, n)
	}
	if want := ShardHeaderBytes + 2*n; st.Size() < want {
		return ShardInfo{}, fmt.Errorf("%s: truncated: header says %d tokens (%d bytes), file has %d bytes", path, n, want, st.Size())
	} else if st.Size() > want {
		return ShardInfo{}, fmt.Errorf("%s: %d bytes after the %d tokens the header announces", path, st.Size()-want, n)
	}
	return ShardInfo{Tokens: n}, nil
}

// ReadShard reads up to maxTokens tokens (all when maxTokens <= 0) from the
// start of an llm.c shard.
func ReadShard(path string, maxTokens int64) ([]int32, ShardInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, ShardInfo{}, err
	}
	defer f.Close()
	info, err := readShardHeader(f, path)
	if err != nil {
		return nil, info, err
	}
	n := info.Tokens
	if maxTokens > 0 && maxTokens < n {
		n = maxTokens
	}
	raw := make([]byte, 2*n)
	if _, err := f.ReadAt(raw, ShardHeaderBytes); err != nil {
		return nil, info, fmt.Errorf("%s: %w", path, err)
	}
	toks := make([]int32, n)
	for i := range toks {
		toks[i] = int32(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return toks, info, nil
}

// WriteShard writes tokens as an llm.c shard, atomically. Tokens must fit
// in uint16 (GPT-2's vocabulary does).
func WriteShard(path string, tokens []int32) error {
	if len(tokens) > 1<<31-1 {
		return fmt.Errorf("write shard: %d tokens exceed the header's int32 count", len(tokens))
	}
	for i, t := range tokens {
		if t < 0 || t > 0xffff {
			return fmt.Errorf("write shard: token %d is %d, outside uint16", i, t)
		}
	}
	return torch.WriteFileAtomicFunc(path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		var hdr [256]int32
		hdr[0], hdr[1], hdr[2] = ShardMagic, ShardVersion, int32(len(tokens))
		if err := binary.Write(bw, binary.LittleEndian, &hdr); err != nil {
			return err
		}
		var b [2]byte
		for _, t := range tokens {
			binary.LittleEndian.PutUint16(b[:], uint16(t))
			if _, err := bw.Write(b[:]); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
}
