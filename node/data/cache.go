package data

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// DefaultCacheRoot is where EnsurePrepared keeps prepared data:
// $XDG_CACHE_HOME/dtrain/data, else ~/.cache/dtrain/data.
func DefaultCacheRoot() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("prepared-data cache: %w", err)
	}
	return filepath.Join(dir, "dtrain", "data"), nil
}

// IsPrepared reports whether path is tokenized data that training can use
// as is: a .bin shard, or a directory holding manifest.json or llm.c
// training shards (see ShardPaths).
func IsPrepared(path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		return false
	}
	if !st.IsDir() {
		f, _ := FormatOf(path)
		return f == FormatShard
	}
	if _, err := os.Stat(filepath.Join(path, ManifestFile)); err == nil {
		return true
	}
	train, err := ShardPaths(path, "train")
	return err == nil && len(train) > 0
}

// EnsurePrepared returns a directory of prepared shards for in. Tokenized
// data (IsPrepared) is returned as is. Anything else is prepared once into
// cacheRoot (DefaultCacheRoot if "") under a key over the input's absolute
// path, each file's size and modification time (for BuiltinCorpus: GOROOT,
// Go version and file list), the shard size, the val fraction and the
// tokenizer, so a later call with the same data returns at once and a
// changed file prepares afresh. opts.In and opts.Out are ignored.
//
// Concurrent callers with the same key each prepare into a temporary
// directory and rename it into place; the one that loses the race uses
// the winner's.
func EnsurePrepared(ctx context.Context, in, cacheRoot string, opts PrepareOptions) (dir string, err error) {
	if IsPrepared(in) {
		return in, nil
	}
	if in != BuiltinCorpus {
		if abs, err := filepath.Abs(in); err == nil {
			in = abs
		}
	}
	opts.In = in
	opts, err = opts.withDefaults()
	if err != nil {
		return "", err
	}
	inputs, err := ListInputs(in)
	if err != nil {
		return "", err
	}
	if len(inputs.Text) == 0 && len(inputs.Shards) > 0 {
		return in, nil // shards under names IsPrepared does not know
	}
	if cacheRoot == "" {
		if cacheRoot, err = DefaultCacheRoot(); err != nil {
			return "", err
		}
	}
	key, err := cacheKey(in, inputs, opts)
	if err != nil {
		return "", err
	}
	dir = filepath.Join(cacheRoot, key)
	if _, err := ReadManifest(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(cacheRoot, 0o755); err != nil {
		return "", fmt.Errorf("prepared-data cache: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheRoot, "."+key+".tmp-")
	if err != nil {
		return "", fmt.Errorf("prepared-data cache: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	opts.Out = tmp
	if _, err := Prepare(ctx, opts); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, merr := ReadManifest(dir); merr == nil {
			return dir, nil // another process got there first
		}
		// An incomplete directory in the way (none of ours: only complete
		// ones are renamed into place) is replaced.
		if rerr := os.RemoveAll(dir); rerr != nil {
			return "", fmt.Errorf("prepared-data cache: %w", errors.Join(err, rerr))
		}
		if err := os.Rename(tmp, dir); err != nil {
			return "", fmt.Errorf("prepared-data cache: %w", err)
		}
	}
	return dir, nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// cacheKey is a readable name for the input plus a hash of everything
// Prepare's output depends on.
func cacheKey(in string, inputs Inputs, opts PrepareOptions) (string, error) {
	type file struct {
		Path    string `json:"path"`
		Size    int64  `json:"size"`
		ModTime int64  `json:"mtime_ns"`
	}
	k := struct {
		Version     int         `json:"version"`
		In          string      `json:"in"`
		Corpus      *CorpusInfo `json:"corpus,omitempty"`
		Files       []file      `json:"files"`
		ShardTokens int64       `json:"shard_tokens"`
		ValFraction float64     `json:"val_fraction"`
		Tokenizer   string      `json:"tokenizer"`
	}{Version: manifestVersion, In: in, Corpus: inputs.Corpus, ShardTokens: opts.ShardTokens, ValFraction: opts.ValFraction, Tokenizer: TokenizerID}
	for _, f := range inputs.Text {
		k.Files = append(k.Files, file{Path: f.Path, Size: f.Size, ModTime: f.ModTime.UnixNano()})
	}
	raw, err := json.Marshal(k)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	name := "gosrc"
	if inputs.Corpus == nil {
		name = strings.TrimSuffix(filepath.Base(in), filepath.Ext(in))
		name = strings.Trim(unsafeName.ReplaceAllString(name, "_"), "._")
		if len(name) > 40 {
			name = name[:40]
		}
		if name == "" {
			name = "data"
		}
	}
	return name + "-" + hex.EncodeToString(sum[:12]), nil
}
