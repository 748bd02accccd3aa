package hub

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewReadsEnvironment(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct {
		name                   string
		env                    map[string]string
		endpoint, token, cache string
	}{
		{"defaults", map[string]string{"HOME": home},
			DefaultEndpoint, "", filepath.Join(home, ".cache", "huggingface", "hub")},
		{"HF_HOME", map[string]string{"HF_HOME": "/hf", "HUGGING_FACE_HUB_TOKEN": "old"},
			DefaultEndpoint, "old", "/hf/hub"},
		{"HF_HUB_CACHE wins", map[string]string{"HF_HOME": "/hf", "HF_HUB_CACHE": "/c", "HF_TOKEN": "new", "HUGGING_FACE_HUB_TOKEN": "old", "HF_ENDPOINT": "http://mirror:8080/"},
			"http://mirror:8080", "new", "/c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"HF_HOME", "HF_HUB_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "XDG_CACHE_HOME"} {
				t.Setenv(k, "")
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := New()
			if err != nil {
				t.Fatal(err)
			}
			if c.endpoint.String() != tc.endpoint || c.token != tc.token || c.CacheDir() != tc.cache {
				t.Fatalf("got endpoint %s token %q cache %s; want %s %q %s", c.endpoint, c.token, c.CacheDir(), tc.endpoint, tc.token, tc.cache)
			}
		})
	}
	if _, err := New(WithEndpoint("huggingface.co")); err == nil {
		t.Fatal("endpoint without scheme accepted")
	}
}

func TestEveryRequestHasADeadline(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices a gone client only after the body
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer hang.Close()
	c, err := New(WithEndpoint(hang.URL), WithCacheDir(t.TempDir()), WithTimeouts(50*time.Millisecond, 50*time.Millisecond), WithRetry(2, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Download(context.Background(), "org/m", "main", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hanging server: err %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("gave up after %v", took)
	}
	if err := c.Tag(context.Background(), "org/m", "main", "t", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hanging server on POST: err %v", err)
	}
}

func TestJSONRepliesAreBounded(t *testing.T) {
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"sha":"` + strings.Repeat("a", maxJSON) + `"}`))
	}))
	defer huge.Close()
	c, err := New(WithEndpoint(huge.URL), WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Download(testCtx(t), "org/m", "main", nil)
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversized reply: err %v", err)
	}
}

func TestTokenStaysOnTheHubHost(t *testing.T) {
	var auth []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
	}))
	defer other.Close()
	c, err := New(WithEndpoint("http://hub.invalid"), WithToken("hf_secret"), WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.send(testCtx(t), call{method: http.MethodGet, url: other.URL, timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(auth) != 1 || auth[0] != "" {
		t.Fatalf("storage host saw Authorization %q", auth)
	}
}

// The token goes only to the endpoint's host and never in clear text over
// a network: not to an http endpoint off loopback, and not after a
// redirect from https down to http on the Hub's own host (issue 17).
func TestTokenOnlyOverHTTPS(t *testing.T) {
	for _, tc := range []struct {
		endpoint, url string
		want          bool
	}{
		{"https://huggingface.co", "https://huggingface.co/api/models/x", true},
		{"https://huggingface.co", "http://huggingface.co/api/models/x", false}, // a downgrading redirect
		{"https://huggingface.co", "https://cdn-lfs.huggingface.co/x", false},
		{"http://hub.example", "http://hub.example/api/models/x", false},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/api/models/x", true},
		{"http://localhost:8080", "http://localhost:8080/api/models/x", true},
		{"http://[::1]:8080", "http://[::1]:8080/x", true},
	} {
		c, err := New(WithEndpoint(tc.endpoint), WithToken("hf_secret"), WithCacheDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.sendsToken(u); got != tc.want {
			t.Errorf("endpoint %s, request %s: token sent %v, want %v", tc.endpoint, tc.url, got, tc.want)
		}
	}
}

func FuzzCheckRepoPath(f *testing.F) {
	for _, s := range []string{"config.json", "a/b/c.bin", "../x", "/abs", "a/../b", `a\b`, "", ".", "a/./b"} {
		f.Add(s)
	}
	root := filepath.FromSlash("/cache/snap")
	f.Fuzz(func(t *testing.T, p string) {
		if checkRepoPath(p) != nil {
			return
		}
		joined := filepath.Join(root, filepath.FromSlash(p))
		if !strings.HasPrefix(joined, root+string(filepath.Separator)) {
			t.Fatalf("accepted %q escapes to %s", p, joined)
		}
		if linkTarget(p, "e") != strings.Repeat("../", strings.Count(filepath.ToSlash(p), "/")+2)+"blobs/e" {
			t.Fatalf("link target of %q", p)
		}
	})
}
