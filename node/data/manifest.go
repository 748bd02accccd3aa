package data

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// ManifestFile is written last into a prepared directory: its presence
// means every shard it lists is complete.
const ManifestFile = "manifest.json"

// manifestVersion changes when Prepare's output would change for the same
// input; it is part of the cache key.
const manifestVersion = 1

// ShardEntry is one shard of a prepared directory.
type ShardEntry struct {
	File   string `json:"file"`
	Tokens int64  `json:"tokens"`
}

// Manifest describes a directory written by Prepare.
type Manifest struct {
	Version     int         `json:"version"`
	Source      string      `json:"source"`
	Corpus      *CorpusInfo `json:"corpus,omitempty"` // for BuiltinCorpus
	Tokenizer   string      `json:"tokenizer"`
	ValFraction float64     `json:"val_fraction"`
	ShardTokens int64       `json:"shard_tokens"`
	// ValFallback is set when no document hashed into val and the tail of
	// the train tokens was held out instead (see Prepare).
	ValFallback  bool         `json:"val_fallback,omitempty"`
	Files        int          `json:"files"`
	FilesSkipped int          `json:"files_skipped"`
	Documents    int64        `json:"documents"`
	ValDocuments int64        `json:"val_documents"`
	Bytes        int64        `json:"bytes"`
	TrainTokens  int64        `json:"train_tokens"`
	ValTokens    int64        `json:"val_tokens"`
	Train        []ShardEntry `json:"train"`
	Val          []ShardEntry `json:"val"`
}

// ReadManifest reads dir's manifest and checks that its shards exist with
// the sizes it lists.
func ReadManifest(dir string) (Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", path, err)
	}
	if m.Version != manifestVersion {
		return Manifest{}, fmt.Errorf("%s: version %d, want %d", path, m.Version, manifestVersion)
	}
	for _, list := range [][]ShardEntry{m.Train, m.Val} {
		for _, s := range list {
			if filepath.Base(s.File) != s.File {
				return Manifest{}, fmt.Errorf("%s: shard name %q is not a plain file name", path, s.File)
			}
			st, err := os.Stat(filepath.Join(dir, s.File))
			if err != nil {
				return Manifest{}, fmt.Errorf("%s: %w", path, err)
			}
			if want := ShardHeaderBytes + 2*s.Tokens; st.Size() != want {
				return Manifest{}, fmt.Errorf("%s: %s has %d bytes, want %d for %d tokens", path, s.File, st.Size(), want, s.Tokens)
			}
		}
	}
	return m, nil
}
