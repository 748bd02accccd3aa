package data

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestShardRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.bin")
	toks := []int32{15496, 995, 0, 50256, 65535, 7}
	if err := WriteShard(path, toks); err != nil {
		t.Fatal(err)
	}
	got, info, err := ReadShard(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if info.Tokens != 6 || !slices.Equal(got, toks) {
		t.Fatalf("read %v (%d), wrote %v", got, info.Tokens, toks)
	}
	got, _, _ = ReadShard(path, 4)
	if !slices.Equal(got, toks[:4]) {
		t.Fatalf("max 4 tokens: %v", got)
	}
	if err := WriteShard(path, []int32{70000}); err == nil {
		t.Fatal("wrote a token above uint16")
	}
}

func TestShardBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.bin")
	WriteShard(good, []int32{1, 2, 3, 4})
	raw, _ := os.ReadFile(good)
	withMagic := func(m int32) []byte {
		b := slices.Clone(raw)
		binary.LittleEndian.PutUint32(b, uint32(m))
		return b
	}
	cases := map[string]struct {
		data []byte
		want string
	}{
		"empty":          {nil, "shorter than the 1024-byte header"},
		"bad magic":      {withMagic(1234), "magic 1234"},
		"truncated":      {raw[:len(raw)-3], "truncated: header says 4 tokens"},
		"trailing bytes": {append(slices.Clone(raw), 9, 9), "2 bytes after the 4 tokens"},
	}
	for name, tc := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		os.WriteFile(p, tc.data, 0o644)
		if _, _, err := ReadShard(p, 0); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

func TestWindows(t *testing.T) {
	toks := make([]int32, 23)
	for i := range toks {
		toks[i] = int32(i)
	}
	const seq = 5
	if n := WindowCount(len(toks), seq); n != 4 { // (23-1)/5
		t.Fatalf("WindowCount = %d, want 4", n)
	}
	var sizes []int
	w := 0
	for b := range Windows(toks, seq, 3) {
		sizes = append(sizes, b.B)
		for r := range b.B {
			for j := range seq {
				if x, y := b.X[r*seq+j], b.Y[r*seq+j]; x != int32(w*seq+j) || y != x+1 {
					t.Fatalf("window %d position %d: x=%d y=%d", w, j, x, y)
				}
			}
			w++
		}
	}
	if !slices.Equal(sizes, []int{3, 1}) {
		t.Fatalf("batch sizes %v, want [3 1]", sizes)
	}
	if WindowCount(5, 5) != 0 || WindowCount(6, 5) != 1 {
		t.Fatal("a window needs seq+1 tokens")
	}
}
