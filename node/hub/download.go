package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// revisionInfo is the part of GET /api/models/{repo}/revision/{revision}
// that Download uses.
type revisionInfo struct {
	SHA      string `json:"sha"`
	Siblings []struct {
		RFilename string `json:"rfilename"`
	} `json:"siblings"`
}

// fileMeta is what the Hub says about one file at one commit.
type fileMeta struct {
	commit string
	etag   string // sha256 for LFS files, the git blob sha1 for others
	size   int64  // -1 when the server did not say
}

// Download makes files of repo at revision (all of them when files is nil)
// present in the cache and returns the snapshot directory holding them,
// {cache}/models--{org}--{name}/snapshots/{sha}. Files already in the
// snapshot are not fetched again, and a commit sha whose named files are all
// cached needs no network at all; LFS files are checked against their sha256.
func (c *Client) Download(ctx context.Context, repo, revision string, files []string) (snapshotDir string, err error) {
	if err := checkRepo(repo); err != nil {
		return "", err
	}
	if err := checkRevision(revision); err != nil {
		return "", err
	}
	dir := c.repoDir(repo)
	if snap, ok := c.cached(dir, revision, files); ok {
		return snap, nil // works offline: a commit's files never change
	}
	var info revisionInfo
	u := c.url("/api/models/" + repo + "/revision/" + url.PathEscape(revision))
	if err := c.getJSON(ctx, u, &info); err != nil {
		return "", fmt.Errorf("resolve %s@%s: %w", repo, revision, err)
	}
	if !isCommit(info.SHA) {
		return "", fmt.Errorf("resolve %s@%s: server gave commit %q, want 40 hex digits", repo, revision, info.SHA)
	}
	if files == nil {
		for _, s := range info.Siblings {
			files = append(files, s.RFilename)
		}
	}
	// Check every name before writing anything: one bad name means the
	// listing cannot be trusted.
	for _, f := range files {
		if err := checkRepoPath(f); err != nil {
			return "", fmt.Errorf("download %s@%s: %w", repo, revision, err)
		}
	}
	snap := filepath.Join(dir, "snapshots", info.SHA)
	if err := os.MkdirAll(snap, 0o755); err != nil {
		return "", err
	}
	for _, f := range files {
		if err := c.downloadFile(ctx, repo, info.SHA, dir, f); err != nil {
			return "", fmt.Errorf("download %s@%s %s: %w", repo, revision, f, err)
		}
	}
	if revision != info.SHA {
		ref := filepath.Join(dir, "refs", filepath.FromSlash(revision))
		if err := writeFileAtomic(ref, []byte(info.SHA)); err != nil {
			return "", fmt.Errorf("write ref %s: %w", revision, err)
		}
	}
	return snap, nil
}

// cached reports whether files, named explicitly, are all in the snapshot of
// revision, a commit sha.
func (c *Client) cached(dir, revision string, files []string) (string, bool) {
	if !isCommit(revision) || files == nil {
		return "", false
	}
	snap := filepath.Join(dir, "snapshots", revision)
	for _, f := range files {
		if checkRepoPath(f) != nil {
			return "", false
		}
		if _, err := os.Stat(filepath.Join(snap, filepath.FromSlash(f))); err != nil {
			return "", false
		}
	}
	return snap, true
}

// downloadFile makes snapshots/{sha}/{name} a link to its blob, fetching the
// blob only when no snapshot has it yet.
func (c *Client) downloadFile(ctx context.Context, repo, sha, dir, name string) error {
	pointer := filepath.Join(dir, "snapshots", sha, filepath.FromSlash(name))
	if _, err := os.Stat(pointer); err == nil {
		return nil // present: a commit's files never change
	}
	resolve := c.url("/" + repo + "/resolve/" + sha + "/" + escapePath(name))
	meta, err := c.headFile(ctx, resolve)
	if err != nil {
		return err
	}
	if meta.commit != "" && meta.commit != sha {
		return fmt.Errorf("server answered for commit %s, asked for %s", meta.commit, sha)
	}
	blob := filepath.Join(dir, "blobs", meta.etag)
	if _, err := os.Stat(blob); errors.Is(err, os.ErrNotExist) {
		if err := c.fetchBlob(ctx, resolve, blob, meta); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return linkFile(pointer, linkTarget(name, meta.etag))
}

// headFile asks the Hub for a file's commit, etag and size without following
// the redirect to storage: for LFS files those headers are on the redirect.
func (c *Client) headFile(ctx context.Context, resolve string) (fileMeta, error) {
	resp, err := c.send(ctx, call{
		method: http.MethodHead, url: resolve, retry: true, timeout: c.requestTimeout, noRedirect: true,
		header: http.Header{"Accept-Encoding": {"identity"}},
	})
	if err != nil {
		return fileMeta{}, err
	}
	resp.Body.Close()
	h := resp.Header
	m := fileMeta{commit: h.Get("X-Repo-Commit"), etag: normalizeETag(firstNonEmpty(h.Get("X-Linked-Etag"), h.Get("ETag"))), size: -1}
	if !safeETag(m.etag) {
		return fileMeta{}, fmt.Errorf("HEAD %s: unusable etag %q", resolve, m.etag)
	}
	if s := h.Get("X-Linked-Size"); s != "" {
		if m.size, err = strconv.ParseInt(s, 10, 64); err != nil || m.size < 0 {
			return fileMeta{}, fmt.Errorf("HEAD %s: bad X-Linked-Size %q", resolve, s)
		}
	} else if resp.StatusCode == http.StatusOK {
		m.size = resp.ContentLength
	}
	return m, nil
}

// normalizeETag strips the weak marker and quotes: W/"abc" -> abc.
func normalizeETag(e string) string {
	return strings.Trim(strings.TrimPrefix(e, "W/"), `"`)
}

// safeETag accepts etags usable as a blob file name.
func safeETag(e string) bool {
	if e == "" || len(e) > 128 {
		return false
	}
	for _, r := range e {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// fetchBlob downloads a file into blob through a temporary file, checking
// its size and, when the etag is a sha256 (LFS), its hash. A failed check
// leaves nothing behind.
func (c *Client) fetchBlob(ctx context.Context, resolve, blob string, meta fileMeta) (err error) {
	if meta.size > c.maxFile {
		return fmt.Errorf("the server announces %d bytes, more than the %d this client takes", meta.size, c.maxFile)
	}
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return err
	}
	resp, err := c.send(ctx, call{
		method: http.MethodGet, url: resolve, retry: true, timeout: c.transferTimeout,
		header: http.Header{"Accept-Encoding": {"identity"}},
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.CreateTemp(filepath.Dir(blob), filepath.Base(blob)+".*.incomplete")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	limit := c.maxFile
	if meta.size >= 0 {
		limit = meta.size
	}
	// One byte more reveals an overlong body.
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", resolve, err)
	}
	if meta.size < 0 && n > c.maxFile {
		return fmt.Errorf("the file exceeds the %d bytes this client takes (its size was not announced)", c.maxFile)
	}
	if meta.size >= 0 && n != meta.size {
		return fmt.Errorf("got %d bytes, server announced %d", n, meta.size)
	}
	if len(meta.etag) == 64 && isHex(meta.etag) {
		if got := hex.EncodeToString(h.Sum(nil)); got != meta.etag {
			return fmt.Errorf("sha256 %s, want %s: download corrupted", got, meta.etag)
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), blob)
}
