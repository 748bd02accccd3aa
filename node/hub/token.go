package hub

import (
	"os"
	"path/filepath"
	"strings"
)

// defaultToken is the access token huggingface_hub would use: $HF_TOKEN,
// else $HUGGING_FACE_HUB_TOKEN, else the file `huggingface-cli login`
// writes (tokenPath), blanks around it trimmed; "" when there is none.
func defaultToken() string {
	for _, name := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} {
		if t := strings.TrimSpace(os.Getenv(name)); t != "" {
			return t
		}
	}
	p := tokenPath()
	if p == "" {
		return ""
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return "" // not logged in: a missing file is the usual case
	}
	return strings.TrimSpace(string(data))
}

// tokenPath is where huggingface_hub keeps the login token:
// $HF_TOKEN_PATH, else token in HF's home (hfHome).
func tokenPath() string {
	if p := os.Getenv("HF_TOKEN_PATH"); p != "" {
		return p
	}
	if h := hfHome(); h != "" {
		return filepath.Join(h, "token")
	}
	return ""
}

// hfHome is huggingface_hub's home: $HF_HOME, else
// $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface ("" when there
// is no home directory).
func hfHome() string {
	if d := os.Getenv("HF_HOME"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "huggingface")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "huggingface")
}
