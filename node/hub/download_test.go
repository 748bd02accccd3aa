package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/hub/hubtest"
)

func newTestClient(t *testing.T, f *hubtest.Server, opts ...Option) *Client {
	t.Helper()
	base := []Option{WithEndpoint(f.URL()), WithToken(""), WithCacheDir(t.TempDir()), WithRetry(3, time.Millisecond), WithTimeouts(10*time.Second, 10*time.Second)}
	c, err := New(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDownloadBuildsHFCacheLayout(t *testing.T) {
	f := hubtest.New(t)
	files := map[string][]byte{
		"config.json":         []byte(`{"n_layer": 2}`),
		"model.safetensors":   bytes.Repeat([]byte("weights!"), 1000),
		"tokenizer/vocab.txt": []byte("hello\nworld\n"),
	}
	sha := f.Seed("org/gpt", files)
	c := newTestClient(t, f)

	snap, err := c.Download(testCtx(t), "org/gpt", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(c.CacheDir(), "models--org--gpt")
	if want := filepath.Join(repoDir, "snapshots", sha); snap != want {
		t.Fatalf("snapshot dir %s, want %s", snap, want)
	}
	etags := map[string]string{
		"config.json":         hubtest.GitBlobSHA1(files["config.json"]),
		"model.safetensors":   hubtest.LFSOid(files["model.safetensors"]),
		"tokenizer/vocab.txt": hubtest.GitBlobSHA1(files["tokenizer/vocab.txt"]),
	}
	for name, etag := range etags {
		p := filepath.Join(snap, filepath.FromSlash(name))
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatalf("%s is not a symlink: %v", name, err)
		}
		want := "../../blobs/" + etag
		if strings.Contains(name, "/") {
			want = "../../../blobs/" + etag
		}
		if target != want {
			t.Errorf("%s -> %s, want %s", name, target, want)
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, files[name]) {
			t.Errorf("%s content differs (err %v)", name, err)
		}
		if _, err := os.Stat(filepath.Join(repoDir, "blobs", etag)); err != nil {
			t.Errorf("blob of %s not named by its etag: %v", name, err)
		}
	}
	ref, err := os.ReadFile(filepath.Join(repoDir, "refs", "main"))
	if err != nil || string(ref) != sha {
		t.Fatalf("refs/main = %q (%v), want %q", ref, err, sha)
	}
	blobs, _ := os.ReadDir(filepath.Join(repoDir, "blobs"))
	if len(blobs) != len(files) {
		t.Errorf("%d entries in blobs, want %d (no temp files)", len(blobs), len(files))
	}

	before, cdnBefore := f.Count("/resolve/"), f.Count("cdn ")
	snap2, err := c.Download(testCtx(t), "org/gpt", "main", nil)
	if err != nil || snap2 != snap {
		t.Fatalf("second download: %s, %v", snap2, err)
	}
	if n, m := f.Count("/resolve/")-before, f.Count("cdn ")-cdnBefore; n != 0 || m != 0 {
		t.Errorf("second download made %d resolve and %d storage requests, want none", n, m)
	}
}

func TestDownloadSubsetAndSharedBlobs(t *testing.T) {
	f := hubtest.New(t)
	weights := bytes.Repeat([]byte{7}, 4096)
	f.Seed("org/m", map[string][]byte{"config.json": []byte("{}"), "model.safetensors": weights})
	c := newTestClient(t, f)
	snap, err := c.Download(testCtx(t), "org/m", "main", []string{"config.json"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(snap, "model.safetensors")); !os.IsNotExist(err) {
		t.Fatalf("file not asked for was downloaded: %v", err)
	}
	// A new commit with the same weights reuses the blob: no storage GET.
	sha2 := f.Seed("org/m", map[string][]byte{"model.safetensors": weights})
	if _, err := c.Download(testCtx(t), "org/m", "main", nil); err != nil {
		t.Fatal(err)
	}
	cdnBefore := f.Count("cdn GET")
	if _, err := c.Download(testCtx(t), "org/m", sha2, nil); err != nil {
		t.Fatal(err)
	}
	if n := f.Count("cdn GET") - cdnBefore; n != 0 {
		t.Errorf("%d storage GETs for a blob already cached", n)
	}
}

func TestDownloadRejectsCorruptLFS(t *testing.T) {
	f := hubtest.New(t)
	data := bytes.Repeat([]byte("abc"), 5000)
	f.Seed("org/bad", map[string][]byte{"model.safetensors": data})
	f.Corrupt(hubtest.LFSOid(data))
	c := newTestClient(t, f)
	_, err := c.Download(testCtx(t), "org/bad", "main", nil)
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("corrupt download: err %v, want a sha256 mismatch", err)
	}
	blobs, _ := os.ReadDir(filepath.Join(c.CacheDir(), "models--org--bad", "blobs"))
	if len(blobs) != 0 {
		t.Fatalf("corrupt download left %d files in blobs: %v", len(blobs), blobs[0].Name())
	}
	links, _ := filepath.Glob(filepath.Join(c.CacheDir(), "models--org--bad", "snapshots", "*", "*"))
	if len(links) != 0 {
		t.Fatalf("corrupt download left snapshot entries %v", links)
	}
}

func TestDownloadRejectsPathTraversal(t *testing.T) {
	for _, name := range []string{"../evil", "/etc/passwd", "a/../../evil", "a//b", `..\evil`, "./x", "a/.."} {
		t.Run(name, func(t *testing.T) {
			f := hubtest.New(t)
			f.Seed("org/m", map[string][]byte{"config.json": []byte("{}")})
			f.AddListing(name)
			c := newTestClient(t, f)
			if _, err := c.Download(testCtx(t), "org/m", "main", nil); err == nil {
				t.Fatalf("sibling %q accepted", name)
			}
			if n := f.Count("/resolve/"); n != 0 {
				t.Fatalf("%d files fetched from a listing with a bad name", n)
			}
			if _, err := c.Download(testCtx(t), "org/m", "main", []string{name}); err == nil {
				t.Fatalf("requested file %q accepted", name)
			}
		})
	}
}

func TestDownloadRetriesTransientErrors(t *testing.T) {
	f := hubtest.New(t)
	f.Seed("org/m", map[string][]byte{"config.json": []byte("{}")})
	c := newTestClient(t, f) // 3 attempts
	f.FailNext(2)
	if _, err := c.Download(testCtx(t), "org/m", "main", nil); err != nil {
		t.Fatalf("two 503s then success: %v", err)
	}
	f.FailNext(3)
	_, err := c.Download(testCtx(t), "org/m", "main", nil)
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != 503 {
		t.Fatalf("three 503s: err %v, want HTTPError 503", err)
	}
}

func TestDownloadOfCachedCommitNeedsNoNetwork(t *testing.T) {
	f := hubtest.New(t)
	sha := f.Seed("org/m", map[string][]byte{"config.json": []byte(`{"a":1}`), "model.safetensors": []byte("w")})
	c := newTestClient(t, f)
	if _, err := c.Download(testCtx(t), "org/m", sha, nil); err != nil {
		t.Fatal(err)
	}
	f.CloseHub()
	snap, err := c.Download(testCtx(t), "org/m", sha, []string{"config.json", "model.safetensors"})
	if err != nil {
		t.Fatalf("cached commit with the Hub down: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(snap, "config.json")); string(got) != `{"a":1}` {
		t.Fatalf("config.json = %q", got)
	}
	if _, err := c.Download(testCtx(t), "org/m", "main", []string{"config.json"}); err == nil {
		t.Fatal("a branch was resolved with the Hub down")
	}
}

// A server that announces no size cannot stream a file without end into
// the cache: the download stops past WithMaxFileSize and leaves nothing
// behind; one that announces more than the bound is refused before any
// byte (issue 17).
func TestDownloadBoundsFileSize(t *testing.T) {
	const sha = "0123456789abcdef0123456789abcdef01234567"
	for _, announce := range []bool{false, true} {
		got := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasPrefix(r.URL.Path, "/api/models/org/m/revision/"):
				fmt.Fprintf(w, `{"sha":%q,"siblings":[{"rfilename":"big.bin"}]}`, sha)
			case r.URL.Path == "/org/m/resolve/"+sha+"/big.bin":
				w.Header().Set("ETag", `"abc"`)
				w.Header().Set("X-Repo-Commit", sha)
				if announce {
					w.Header().Set("X-Linked-Size", "5000000")
				}
				if r.Method == http.MethodHead {
					return
				}
				got++
				chunk := bytes.Repeat([]byte("x"), 64<<10)
				for range 64 { // 4 MiB, chunked: no Content-Length
					if _, err := w.Write(chunk); err != nil {
						return
					}
					w.(http.Flusher).Flush()
				}
			default:
				http.NotFound(w, r)
			}
		}))
		c, err := New(WithEndpoint(srv.URL), WithToken(""), WithCacheDir(t.TempDir()), WithRetry(1, time.Millisecond),
			WithTimeouts(10*time.Second, 10*time.Second), WithMaxFileSize(1<<20))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Download(testCtx(t), "org/m", "main", nil)
		srv.Close()
		want := "exceeds the 1048576 bytes"
		if announce {
			want = "announces 5000000 bytes, more than the 1048576"
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("announced %v: err %v, want one saying %q", announce, err, want)
		}
		if announce && got != 0 {
			t.Errorf("a file announced over the bound was downloaded anyway")
		}
		blobs, _ := os.ReadDir(filepath.Join(c.CacheDir(), "models--org--m", "blobs"))
		if len(blobs) != 0 {
			t.Errorf("announced %v: the refused download left %d files in blobs", announce, len(blobs))
		}
	}
}
