// Package datatest makes small token datasets for tests of the packages that
// train on node/data, the way net/http/httptest makes servers.
package datatest

import (
	"path/filepath"
	"testing"

	"github.com/dtrain-dev/dtrain/node/data"
)

// Pattern returns n tokens below 102 of a fixed, learnable sequence: a
// period-97 ramp shifted every 13 tokens, so a small model's loss falls
// well below a uniform guess within a few dozen steps.
func Pattern(n int) []int32 {
	toks := make([]int32, n)
	for i := range toks {
		toks[i] = int32((i*7)%97 + (i/13)%5)
	}
	return toks
}

// Split writes the first train tokens of Pattern(train+val) as a training
// shard and the rest as a held-out one, in a test's temporary directory,
// and opens both as windows of seq tokens. They close when the test ends.
func Split(t testing.TB, train, val, seq int) (tr, va *data.Dataset) {
	t.Helper()
	dir := t.TempDir()
	toks := Pattern(train + val)
	if err := data.WriteShard(filepath.Join(dir, "train_000000.bin"), toks[:train]); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteShard(filepath.Join(dir, "val_000000.bin"), toks[train:]); err != nil {
		t.Fatal(err)
	}
	var err error
	if tr, err = data.OpenDataset(dir, "train", seq); err != nil {
		t.Fatal(err)
	}
	if va, err = data.OpenDataset(dir, "val", seq); err != nil {
		tr.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(); va.Close() })
	return tr, va
}
