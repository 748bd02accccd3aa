package hub

import (
	"os"
	"path/filepath"
	"testing"
)

// TestTokenLookup: the token comes from the environment first, then from
// the file `huggingface-cli login` writes, in huggingface_hub's order, and
// a token from the file still goes to no endpoint a config file names
// alone.
func TestTokenLookup(t *testing.T) {
	home, hfHome, xdg := t.TempDir(), t.TempDir(), t.TempDir()
	custom := filepath.Join(t.TempDir(), "my-token")
	for path, token := range map[string]string{
		filepath.Join(hfHome, "token"): "hf_home\n",
		custom:                         "  hf_custom \n",
		filepath.Join(xdg, "huggingface", "token"):            "hf_xdg",
		filepath.Join(home, ".cache", "huggingface", "token"): "hf_home_dir\r\n",
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"HF_TOKEN wins", map[string]string{"HF_TOKEN": "hf_env", "HUGGING_FACE_HUB_TOKEN": "hf_old", "HF_HOME": hfHome}, "hf_env"},
		{"the old variable", map[string]string{"HUGGING_FACE_HUB_TOKEN": "hf_old", "HF_HOME": hfHome}, "hf_old"},
		{"HF_TOKEN_PATH", map[string]string{"HF_TOKEN_PATH": custom, "HF_HOME": hfHome}, "hf_custom"},
		{"HF_HOME", map[string]string{"HF_HOME": hfHome, "XDG_CACHE_HOME": xdg}, "hf_home"},
		{"XDG_CACHE_HOME", map[string]string{"XDG_CACHE_HOME": xdg}, "hf_xdg"},
		{"home", map[string]string{}, "hf_home_dir"},
		{"HF_TOKEN_PATH names no file", map[string]string{"HF_TOKEN_PATH": filepath.Join(home, "none"), "HF_HOME": hfHome}, ""},
		{"not logged in", map[string]string{"HF_HOME": t.TempDir()}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME", "XDG_CACHE_HOME", "HF_ENDPOINT"} {
				t.Setenv(k, "")
			}
			t.Setenv("HOME", home)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := New(WithCacheDir(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			if c.token != tc.want {
				t.Fatalf("token %q, want %q", c.token, tc.want)
			}
		})
	}
	t.Run("file token stays on the Hub", func(t *testing.T) {
		t.Setenv("HF_TOKEN", "")
		t.Setenv("HUGGING_FACE_HUB_TOKEN", "")
		t.Setenv("HF_TOKEN_PATH", "")
		t.Setenv("HF_ENDPOINT", "")
		t.Setenv("HF_HOME", hfHome)
		opts, warning := ConfigEndpoint("https://elsewhere.example")
		c, err := New(append(opts, WithCacheDir(t.TempDir()))...)
		if err != nil {
			t.Fatal(err)
		}
		if c.token != "" || warning == "" {
			t.Fatalf("a config's own endpoint gets token %q (warning %q), want none", c.token, warning)
		}
	})
}
