package netx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// maxKeyFileSize bounds what LoadOrCreateKey reads: a marshalled Ed25519
// key is 68 bytes, so anything much larger is not a key file.
const maxKeyFileSize = 4 << 10

// LoadOrCreateKey returns the Ed25519 identity key stored at path, creating
// it on first start. The file is written atomically with mode 0600 (its
// parent directory, when created, with 0700). A key file that group or
// others can read is refused, because whoever reads it can impersonate the
// peer; a file that does not hold a key is refused and never overwritten.
func LoadOrCreateKey(path string) (crypto.PrivKey, error) {
	if path == "" {
		return nil, errors.New("identity key: empty path")
	}
	key, err := loadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	return createKey(path)
}

func loadKey(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("identity key %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("identity key %s: permissions %04o let other users read it; run `chmod 600 %s`", path, perm, path)
	}
	if st.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("identity key %s: %d bytes is not a key file", path, st.Size())
	}
	raw := make([]byte, st.Size())
	if _, err := f.ReadAt(raw, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("identity key %s is corrupt (move it away to create a new identity): %w", path, err)
	}
	if key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("identity key %s: type %s, want Ed25519", path, key.Type())
	}
	return key, nil
}

// createKey writes a new key to a temporary file in path's directory, syncs
// it and links it into place, so a crash never leaves a half-written key and
// a concurrent creator never has its key replaced.
func createKey(path string) (crypto.PrivKey, error) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("identity key: generate: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity key: marshal: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".dtrain-key-*")
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := writeSynced(tmp, raw); err != nil {
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	// Link, unlike rename, fails when path appeared meanwhile: an existing
	// key is never overwritten.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadKey(path)
		}
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new directory entry durable
		d.Close()
	}
	return key, nil
}

func writeSynced(f *os.File, data []byte) error {
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
