package hub

import (
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// checkRepo accepts "name" or "org/name" made of letters, digits, '-', '_'
// and '.', the names the Hub allows.
func checkRepo(repo string) error {
	parts := strings.Split(repo, "/")
	if len(parts) > 2 {
		return fmt.Errorf("repo %q: want name or org/name", repo)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.Contains(p, "--") || strings.Contains(p, "..") {
			return fmt.Errorf("repo %q: bad name %q", repo, p)
		}
		for _, r := range p {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
			if !ok {
				return fmt.Errorf("repo %q: bad character %q", repo, r)
			}
		}
	}
	return nil
}

// checkRepoPath accepts a relative slash-separated path inside a repo: no
// "..", ".", empty or absolute parts, no backslashes or NULs, so a file name
// from the server can never land outside the snapshot.
func checkRepoPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
		return fmt.Errorf("path %q: not a relative repo path", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("path %q: bad element %q", p, part)
		}
	}
	if !filepath.IsLocal(filepath.FromSlash(p)) {
		return fmt.Errorf("path %q: not local", p)
	}
	return nil
}

// checkRevision accepts branch, tag and commit names, including ones with
// slashes such as "refs/pr/1", which become nested files under refs/.
func checkRevision(rev string) error {
	if err := checkRepoPath(rev); err != nil {
		return fmt.Errorf("revision %q: %w", rev, err)
	}
	return nil
}

// isCommit reports whether rev is a full 40-hex commit sha.
func isCommit(rev string) bool { return len(rev) == 40 && isHex(rev) }

func isHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// escapePath escapes each element of a slash-separated repo path.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// repoDir is huggingface_hub's folder for a model repo:
// "org/name" -> "models--org--name".
func (c *Client) repoDir(repo string) string {
	return filepath.Join(c.cacheDir, "models--"+strings.ReplaceAll(repo, "/", "--"))
}

// linkTarget is the relative symlink target from snapshots/{sha}/{file} to
// blobs/{etag}, the same as huggingface_hub's os.path.relpath.
func linkTarget(file, etag string) string {
	up := strings.Repeat("../", strings.Count(file, "/")+2)
	return up + "blobs/" + etag
}

// linkFile points snapshots/{sha}/{file} at its blob, replacing any link
// already there atomically.
func linkFile(pointer, target string) error {
	if err := os.MkdirAll(filepath.Dir(pointer), 0o755); err != nil {
		return err
	}
	tmp := pointer + ".link-" + randomSuffix()
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, pointer); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// writeFileAtomic writes data to name through a temporary file in the same
// directory, so readers see the old content or the new, never a part.
func writeFileAtomic(name string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func randomSuffix() string { return rand.Text()[:12] }
