package netx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf", "dtrain")
	path := filepath.Join(dir, "node.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	if dst, err := os.Stat(dir); err != nil || dst.Mode().Perm() != 0o700 {
		t.Errorf("created key directory: %v, mode %v, want 0700", err, dst.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("reloaded key differs from the created one: the peer id would change on restart")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("key directory holds %d entries, want only the key (no temporary files left)", len(entries))
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	cases := []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    string
	}{
		{"group readable", nil, 0o640, "permissions"},
		{"world readable", nil, 0o604, "permissions"},
		{"corrupt", []byte("not a key at all"), 0o600, "corrupt"},
		{"empty", []byte{}, 0o600, "corrupt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.key")
			if _, err := LoadOrCreateKey(path); err != nil {
				t.Fatal(err)
			}
			if tc.content != nil {
				if err := os.WriteFile(path, tc.content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			_, err := LoadOrCreateKey(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadOrCreateKey = %v, want an error mentioning %q", err, tc.want)
			}
			after, _ := os.ReadFile(path)
			if string(before) != string(after) {
				t.Fatal("a refused key file was modified")
			}
		})
	}
}
