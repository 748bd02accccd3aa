package hub

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// chunk is how many files go in one preupload or LFS batch request, as in
// huggingface_hub.
const chunk = 256

// maxRegular is the largest file sent inline in a commit; the Hub decides
// per file, this only refuses to read a file the Hub wrongly calls regular
// into memory.
const maxRegular = 100 << 20

// addition is one local file to commit.
type addition struct {
	path   string // in the repo, slash-separated
	local  string
	size   int64
	sample []byte // first 512 bytes, for the Hub's LFS decision
	oid    string // sha256 hex, set for LFS files
	mode   string // "regular" or "lfs"
	ignore bool   // the Hub says the file is unchanged or ignored
}

// Upload commits every regular file under dir (skipping .git) to repo at
// revision, a branch, as one commit with message as its summary, and returns
// the new commit's sha. Large files go through Git LFS; LFS objects the Hub
// already holds are not sent again.
func (c *Client) Upload(ctx context.Context, repo, revision, dir, message string) (commitSHA string, err error) {
	if err := checkRepo(repo); err != nil {
		return "", err
	}
	if err := checkRevision(revision); err != nil {
		return "", err
	}
	adds, err := localFiles(dir)
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", dir, err)
	}
	if len(adds) == 0 {
		return "", fmt.Errorf("upload %s: no files", dir)
	}
	for i := 0; i < len(adds); i += chunk {
		if err := c.preupload(ctx, repo, revision, adds[i:min(i+chunk, len(adds))]); err != nil {
			return "", fmt.Errorf("upload %s to %s: %w", dir, repo, err)
		}
	}
	var lfs []*addition
	for _, a := range adds {
		if a.mode == "lfs" && !a.ignore {
			if a.oid, err = fileSHA256(a.local); err != nil {
				return "", err
			}
			lfs = append(lfs, a)
		}
	}
	for i := 0; i < len(lfs); i += chunk {
		if err := c.uploadLFS(ctx, repo, revision, lfs[i:min(i+chunk, len(lfs))]); err != nil {
			return "", fmt.Errorf("upload %s to %s: %w", dir, repo, err)
		}
	}
	sha, err := c.commit(ctx, repo, revision, message, adds)
	if err != nil {
		return "", fmt.Errorf("commit %s to %s@%s: %w", dir, repo, revision, err)
	}
	return sha, nil
}

// localFiles lists the regular files under dir in a stable order.
func localFiles(dir string) ([]*addition, error) {
	var adds []*addition
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		a := &addition{path: filepath.ToSlash(rel), local: p}
		if err := checkRepoPath(a.path); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		a.size = st.Size()
		a.sample = make([]byte, min(512, a.size))
		if _, err := io.ReadFull(f, a.sample); err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		adds = append(adds, a)
		return nil
	})
	return adds, err
}

func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// preupload asks the Hub which files go through LFS.
func (c *Client) preupload(ctx context.Context, repo, revision string, adds []*addition) error {
	type file struct {
		Path   string `json:"path"`
		Size   int64  `json:"size"`
		Sample string `json:"sample"`
	}
	var req struct {
		Files []file `json:"files"`
	}
	for _, a := range adds {
		req.Files = append(req.Files, file{a.path, a.size, base64.StdEncoding.EncodeToString(a.sample)})
	}
	var resp struct {
		Files []struct {
			Path         string `json:"path"`
			UploadMode   string `json:"uploadMode"`
			ShouldIgnore bool   `json:"shouldIgnore"`
		} `json:"files"`
	}
	u := c.url("/api/models/" + repo + "/preupload/" + url.PathEscape(revision))
	if err := c.postJSON(ctx, u, "application/json", c.requestTimeout, req, &resp); err != nil {
		return fmt.Errorf("preupload: %w", err)
	}
	byPath := make(map[string]*addition, len(adds))
	for _, a := range adds {
		byPath[a.path] = a
	}
	for _, f := range resp.Files {
		a, ok := byPath[f.Path]
		if !ok {
			continue
		}
		if f.UploadMode != "lfs" && f.UploadMode != "regular" {
			return fmt.Errorf("preupload: %s: unknown upload mode %q", f.Path, f.UploadMode)
		}
		a.mode, a.ignore = f.UploadMode, f.ShouldIgnore
	}
	for _, a := range adds {
		if a.mode == "" {
			return fmt.Errorf("preupload: no upload mode for %s", a.path)
		}
	}
	return nil
}

// lfsAction is one step the LFS batch reply asks for.
type lfsAction struct {
	Href   string            `json:"href"`
	Header map[string]string `json:"header"`
}

// uploadLFS sends the LFS objects the Hub does not hold yet, following the
// Git LFS batch API (git-lfs/docs/api/batch.md).
func (c *Client) uploadLFS(ctx context.Context, repo, revision string, adds []*addition) error {
	type object struct {
		OID  string `json:"oid"`
		Size int64  `json:"size"`
	}
	req := map[string]any{
		"operation": "upload",
		"transfers": []string{"basic"},
		"hash_algo": "sha256",
		"ref":       map[string]string{"name": revision},
	}
	objs := make([]object, 0, len(adds))
	for _, a := range adds {
		objs = append(objs, object{a.oid, a.size})
	}
	req["objects"] = objs
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var resp struct {
		Objects []struct {
			OID     string               `json:"oid"`
			Actions map[string]lfsAction `json:"actions"`
			Error   *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"objects"`
	}
	u := c.url("/" + repo + ".git/info/lfs/objects/batch")
	if err := c.postJSON(ctx, u, lfsMediaType, c.requestTimeout, body, &resp); err != nil {
		return fmt.Errorf("lfs batch: %w", err)
	}
	byOID := make(map[string]*addition, len(adds))
	for _, a := range adds {
		byOID[a.oid] = a
	}
	for _, o := range resp.Objects {
		a, ok := byOID[o.OID]
		if !ok {
			return fmt.Errorf("lfs batch: reply names unknown object %s", o.OID)
		}
		if o.Error != nil {
			return fmt.Errorf("lfs batch: %s: %d %s", a.path, o.Error.Code, o.Error.Message)
		}
		up, ok := o.Actions["upload"]
		if !ok {
			continue // the Hub already has these bytes
		}
		if err := c.putLFS(ctx, up, a); err != nil {
			return fmt.Errorf("lfs upload %s: %w", a.path, err)
		}
		if v, ok := o.Actions["verify"]; ok {
			if err := c.verifyLFS(ctx, v, a); err != nil {
				return fmt.Errorf("lfs verify %s: %w", a.path, err)
			}
		}
	}
	return nil
}

func (c *Client) putLFS(ctx context.Context, act lfsAction, a *addition) error {
	if _, ok := act.Header["chunk_size"]; ok {
		return errors.New("server asked for a multipart upload; only basic is supported")
	}
	h := http.Header{}
	for k, v := range act.Header {
		h.Set(k, v)
	}
	resp, err := c.send(ctx, call{
		method: http.MethodPut, url: act.Href, header: h, size: a.size,
		retry: true, timeout: c.transferTimeout, // a PUT of the same bytes is idempotent
		body: func() (io.ReadCloser, error) { return os.Open(a.local) },
	})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (c *Client) verifyLFS(ctx context.Context, act lfsAction, a *addition) error {
	body, err := json.Marshal(map[string]any{"oid": a.oid, "size": a.size})
	if err != nil {
		return err
	}
	h := http.Header{"Content-Type": {lfsMediaType}, "Accept": {lfsMediaType}}
	for k, v := range act.Header {
		h.Set(k, v)
	}
	resp, err := c.send(ctx, call{
		method: http.MethodPost, url: act.Href, header: h, size: int64(len(body)), timeout: c.requestTimeout,
		body: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
	})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// commit sends the NDJSON commit: a header line, then one line per file,
// inline for regular files and by oid for LFS files.
func (c *Client) commit(ctx context.Context, repo, revision, message string, adds []*addition) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // Encode ends each value with '\n'
	if err := enc.Encode(map[string]any{"key": "header", "value": map[string]string{"summary": message}}); err != nil {
		return "", err
	}
	for _, a := range adds {
		var line map[string]any
		switch {
		case a.ignore:
			continue
		case a.mode == "lfs":
			line = map[string]any{"key": "lfsFile", "value": map[string]any{"path": a.path, "algo": "sha256", "oid": a.oid, "size": a.size}}
		default:
			if a.size > maxRegular {
				return "", fmt.Errorf("%s: %d bytes is too large to send inline", a.path, a.size)
			}
			data, err := os.ReadFile(a.local)
			if err != nil {
				return "", err
			}
			line = map[string]any{"key": "file", "value": map[string]string{"content": base64.StdEncoding.EncodeToString(data), "path": a.path, "encoding": "base64"}}
		}
		if err := enc.Encode(line); err != nil {
			return "", err
		}
	}
	var resp struct {
		CommitOID string `json:"commitOid"`
	}
	u := c.url("/api/models/" + repo + "/commit/" + url.PathEscape(revision))
	if err := c.postJSON(ctx, u, "application/x-ndjson", c.transferTimeout, buf.Bytes(), &resp); err != nil {
		return "", err
	}
	if strings.TrimSpace(resp.CommitOID) == "" {
		return "", errors.New("reply has no commitOid")
	}
	return resp.CommitOID, nil
}

// CreateRepo creates a model repo; a repo that already exists is success.
func (c *Client) CreateRepo(ctx context.Context, repo string, private bool) error {
	if err := checkRepo(repo); err != nil {
		return err
	}
	req := map[string]any{"type": "model", "private": private}
	if org, name, ok := strings.Cut(repo, "/"); ok {
		req["organization"], req["name"] = org, name
	} else {
		req["name"] = repo
	}
	err := c.postJSON(ctx, c.url("/api/repos/create"), "application/json", c.requestTimeout, req, nil)
	var he *HTTPError
	if errors.As(err, &he) && he.Status == http.StatusConflict {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create repo %s: %w", repo, err)
	}
	return nil
}
