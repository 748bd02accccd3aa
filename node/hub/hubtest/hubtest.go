package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Server is an in-memory Hub and its CDN. All methods are safe to call while
// clients are talking to it.
type Server struct {
	hub, cdn *httptest.Server

	mu        sync.Mutex
	token     string // when set, every Hub request must carry it
	repos     map[string]*repository
	lfs       map[string][]byte // oid -> bytes
	corrupt   map[string]bool   // oid -> serve altered bytes
	extra     []string          // names added to every revision listing
	failNext  int               // next GET/HEADs on the Hub answer 503
	log       []string          // "METHOD path" of every request, both hosts
	cdnAuth   []string          // Authorization headers the CDN saw
	hubAuth   []string          // Authorization headers the Hub saw
	commitSeq int
}

type repository struct {
	commits  map[string]map[string]file // sha -> path -> file
	branches map[string]string
	tags     map[string]string
}

type file struct {
	data []byte // regular files
	oid  string // LFS files: sha256 of the bytes in Server.lfs
	size int64
}

// New starts a Hub and its CDN, both closed when t's test ends.
func New(t testing.TB) *Server {
	s := &Server{repos: map[string]*repository{}, lfs: map[string][]byte{}, corrupt: map[string]bool{}}
	s.hub = httptest.NewServer(http.HandlerFunc(s.serveHub))
	s.cdn = httptest.NewServer(http.HandlerFunc(s.serveCDN))
	t.Cleanup(s.hub.Close)
	t.Cleanup(s.cdn.Close)
	return s
}

// URL is the Hub's endpoint, for hub.WithEndpoint.
func (s *Server) URL() string { return s.hub.URL }

// CloseHub takes the Hub down, leaving the CDN up, so a test can check what
// works offline. Requests to URL fail from then on.
func (s *Server) CloseHub() { s.hub.Close() }

// GitBlobSHA1 is the git blob id of data: the ETag the Hub gives a regular
// file, and so the name huggingface_hub gives its blob in the cache.
func GitBlobSHA1(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// LFSOid is the Git LFS object id of data (its sha256, in hex): the ETag the
// Hub gives an LFS file.
func LFSOid(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// isLFS is the Hub's choice: large files and safetensors go through LFS.
func isLFS(path string, size int64) bool {
	return size >= 10<<20 || strings.HasSuffix(path, ".safetensors")
}

// Seed commits files to repo's main branch, creating the repo, and returns the
// commit sha.
func (s *Server) Seed(repo string, files map[string][]byte) (sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repoLocked(repo)
	tree := map[string]file{}
	for p, d := range files {
		if isLFS(p, int64(len(d))) {
			oid := LFSOid(d)
			s.lfs[oid] = d
			tree[p] = file{oid: oid, size: int64(len(d))}
		} else {
			tree[p] = file{data: d, size: int64(len(d))}
		}
	}
	return s.commitLocked(r, "main", tree)
}

func (s *Server) repoLocked(name string) *repository {
	r := s.repos[name]
	if r == nil {
		r = &repository{commits: map[string]map[string]file{}, branches: map[string]string{}, tags: map[string]string{}}
		s.repos[name] = r
	}
	return r
}

func (s *Server) commitLocked(r *repository, branch string, tree map[string]file) string {
	s.commitSeq++
	sum := sha1.Sum([]byte("commit " + strconv.Itoa(s.commitSeq)))
	sha := hex.EncodeToString(sum[:])
	r.commits[sha] = tree
	r.branches[branch] = sha
	return sha
}

func (r *repository) resolve(rev string) string {
	if sha, ok := r.branches[rev]; ok {
		return sha
	}
	if sha, ok := r.tags[rev]; ok {
		return sha
	}
	if _, ok := r.commits[rev]; ok {
		return rev
	}
	return ""
}

// File returns the bytes of path at rev (a branch, tag or commit sha) as the
// Hub holds them, and whether it holds them.
func (s *Server) File(repo, rev, path string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[repo]
	if r == nil {
		return nil, false
	}
	f, ok := r.commits[r.resolve(rev)][path]
	if !ok {
		return nil, false
	}
	if f.oid != "" {
		return s.lfs[f.oid], true
	}
	return f.data, true
}

// Tags returns repo's tags, each mapped to its commit sha; nil when the repo
// does not exist.
func (s *Server) Tags(repo string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[repo]
	if r == nil {
		return nil
	}
	return maps.Clone(r.tags)
}

// Count returns how many requests so far, on either host, contain substr in
// their Log line.
func (s *Server) Count(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.log {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// Log returns one line per request so far, in order: "METHOD /escaped/path"
// for the Hub, "cdn METHOD /path" for the CDN.
func (s *Server) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// HubAuth returns the Authorization header of every request the Hub saw, in
// order ("" where there was none).
func (s *Server) HubAuth() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hubAuth)
}

// CDNAuth returns the Authorization header of every request the CDN saw, in
// order ("" where there was none). A client must not send its Hub token here.
func (s *Server) CDNAuth() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cdnAuth)
}

// SetToken makes the Hub answer 401 to every request without
// "Authorization: Bearer token"; "" lets every request through.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// Corrupt makes the CDN serve the LFS object oid (see LFSOid) with one bit
// flipped, as a broken download would.
func (s *Server) Corrupt(oid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt[oid] = true
}

// FailNext makes the Hub answer the next n GETs and HEADs with 503.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// AddListing adds names to the file list of every revision, without any file
// behind them, as a hostile or broken Hub might.
func (s *Server) AddListing(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extra = append(s.extra, names...)
}
