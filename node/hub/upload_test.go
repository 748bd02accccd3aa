package hub

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/dtrain-dev/dtrain/node/hub/hubtest"
)

func writeTestDir(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestUploadThenDownloadRoundTrip(t *testing.T) {
	f := hubtest.New(t)
	c := newTestClient(t, f, WithToken("hf_test"))
	f.SetToken("hf_test")
	ctx := testCtx(t)
	if err := c.CreateRepo(ctx, "org/ckpt", false); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateRepo(ctx, "org/ckpt", false); err != nil {
		t.Fatalf("creating an existing repo: %v", err)
	}

	big := make([]byte, 10<<20+12345) // > 10 MB: LFS
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	files := map[string][]byte{
		"config.json":        []byte(`{"n_embd": 768}`),
		"model.safetensors":  big,
		"trainer/state.json": []byte(`{"epoch": 3}`),
	}
	dir := writeTestDir(t, files)
	sha, err := c.Upload(ctx, "org/ckpt", "main", dir, "epoch 3")
	if err != nil {
		t.Fatal(err)
	}
	if !isCommit(sha) {
		t.Fatalf("commit sha %q", sha)
	}
	for name, want := range files {
		got, ok := f.File("org/ckpt", sha, name)
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("hub holds %s: present %v, identical %v", name, ok, bytes.Equal(got, want))
		}
	}
	if got, _ := f.File("org/ckpt", sha, ".gitattributes"); len(got) == 0 {
		t.Error("commit dropped the parent's .gitattributes")
	}
	if n := f.Count("cdn PUT"); n != 1 {
		t.Errorf("%d LFS PUTs, want 1", n)
	}
	for _, a := range f.CDNAuth() {
		if a != "" {
			t.Fatalf("token sent to the storage host: %q", a)
		}
	}

	snap, err := c.Download(ctx, "org/ckpt", sha, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(snap, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("downloaded %s differs (err %v)", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(c.CacheDir(), "models--org--ckpt", "refs", sha)); !os.IsNotExist(err) {
		t.Error("a download by commit sha wrote a ref named by the sha")
	}

	// Uploading the same weights again sends no LFS bytes: the Hub has them.
	files["config.json"] = []byte(`{"n_embd": 1024}`)
	sha2, err := c.Upload(ctx, "org/ckpt", "main", writeTestDir(t, files), "epoch 4")
	if err != nil || sha2 == sha {
		t.Fatalf("second upload: %s, %v", sha2, err)
	}
	if n := f.Count("cdn PUT"); n != 1 {
		t.Errorf("%d LFS PUTs after re-uploading the same weights, want 1", n)
	}
	if got, _ := f.File("org/ckpt", "main", "config.json"); !bytes.Equal(got, files["config.json"]) {
		t.Errorf("main's config.json is %s", got)
	}
}

func TestUploadEmptyDirFails(t *testing.T) {
	f := hubtest.New(t)
	f.Seed("org/m", nil)
	c := newTestClient(t, f)
	if _, err := c.Upload(testCtx(t), "org/m", "main", t.TempDir(), "nothing"); err == nil {
		t.Fatal("empty directory uploaded")
	}
	if n := f.Count("/commit/"); n != 0 {
		t.Fatalf("%d commits for an empty directory", n)
	}
}
