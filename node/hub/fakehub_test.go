package hub

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeHub is an in-memory Hub serving the endpoints the client uses, shaped
// like huggingface.co's replies, with LFS bytes on a second host (cdn) as on
// the real Hub. Repos are always "org/name".
type fakeHub struct {
	hub, cdn *httptest.Server

	mu        sync.Mutex
	token     string // when set, every Hub request must carry it
	repos     map[string]*fakeRepo
	lfs       map[string][]byte // oid -> bytes
	corrupt   map[string]bool   // oid -> serve altered bytes
	extra     []string          // names added to every revision listing
	failNext  int               // next GET/HEADs on the Hub answer 503
	log       []string          // "METHOD path" of every request, both hosts
	cdnAuth   []string          // Authorization headers the cdn saw
	hubAuth   []string          // Authorization headers the Hub saw
	commitSeq int
}

type fakeRepo struct {
	commits  map[string]map[string]fakeFile // sha -> path -> file
	branches map[string]string
	tags     map[string]string
}

type fakeFile struct {
	data []byte // regular files
	oid  string // LFS files: sha256 of the bytes in fakeHub.lfs
	size int64
}

func newFakeHub(t *testing.T) *fakeHub {
	f := &fakeHub{repos: map[string]*fakeRepo{}, lfs: map[string][]byte{}, corrupt: map[string]bool{}}
	f.hub = httptest.NewServer(http.HandlerFunc(f.serveHub))
	f.cdn = httptest.NewServer(http.HandlerFunc(f.serveCDN))
	t.Cleanup(f.hub.Close)
	t.Cleanup(f.cdn.Close)
	return f
}

// isLFS is the Hub's choice: large files and safetensors go through LFS.
func isLFS(path string, size int64) bool {
	return size >= 10<<20 || strings.HasSuffix(path, ".safetensors")
}

func gitBlobSHA1(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

func sha256Hex(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// seed commits files to repo's main branch (creating the repo) and returns
// the commit sha.
func (f *fakeHub) seed(repo string, files map[string][]byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.repoLocked(repo)
	tree := map[string]fakeFile{}
	for p, d := range files {
		if isLFS(p, int64(len(d))) {
			oid := sha256Hex(d)
			f.lfs[oid] = d
			tree[p] = fakeFile{oid: oid, size: int64(len(d))}
		} else {
			tree[p] = fakeFile{data: d, size: int64(len(d))}
		}
	}
	return f.commitLocked(r, "main", tree)
}

func (f *fakeHub) repoLocked(repo string) *fakeRepo {
	r := f.repos[repo]
	if r == nil {
		r = &fakeRepo{commits: map[string]map[string]fakeFile{}, branches: map[string]string{}, tags: map[string]string{}}
		f.repos[repo] = r
	}
	return r
}

func (f *fakeHub) commitLocked(r *fakeRepo, branch string, tree map[string]fakeFile) string {
	f.commitSeq++
	sum := sha1.Sum([]byte("commit " + strconv.Itoa(f.commitSeq)))
	sha := hex.EncodeToString(sum[:])
	r.commits[sha] = tree
	r.branches[branch] = sha
	return sha
}

// file returns the bytes of path at rev as the Hub holds them.
func (f *fakeHub) file(repo, rev, path string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.repos[repo]
	if r == nil {
		return nil, false
	}
	ff, ok := r.commits[r.resolve(rev)][path]
	if !ok {
		return nil, false
	}
	if ff.oid != "" {
		return f.lfs[ff.oid], true
	}
	return ff.data, true
}

func (f *fakeHub) count(substr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, l := range f.log {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func (r *fakeRepo) resolve(rev string) string {
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

func hubError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (f *fakeHub) serveHub(w http.ResponseWriter, req *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, req.Method+" "+req.URL.EscapedPath())
	f.hubAuth = append(f.hubAuth, req.Header.Get("Authorization"))
	if f.token != "" && req.Header.Get("Authorization") != "Bearer "+f.token {
		hubError(w, http.StatusUnauthorized, "", "Invalid credentials in Authorization header")
		return
	}
	if f.failNext > 0 && (req.Method == http.MethodGet || req.Method == http.MethodHead) {
		f.failNext--
		hubError(w, http.StatusServiceUnavailable, "", "try again")
		return
	}
	seg := strings.Split(strings.TrimPrefix(req.URL.EscapedPath(), "/"), "/")
	for i, s := range seg {
		seg[i], _ = url.PathUnescape(s)
	}
	switch {
	case len(seg) == 3 && seg[0] == "api" && seg[1] == "repos" && seg[2] == "create":
		f.createRepo(w, req)
	case len(seg) >= 5 && seg[0] == "api" && seg[1] == "models":
		f.serveAPI(w, req, seg[2]+"/"+seg[3], seg[4], strings.Join(seg[5:], "/"))
	case len(seg) >= 6 && strings.HasSuffix(seg[1], ".git") && seg[2] == "info" && seg[3] == "lfs":
		f.serveLFS(w, req, seg[0]+"/"+strings.TrimSuffix(seg[1], ".git"), strings.Join(seg[4:], "/"))
	case len(seg) >= 5 && seg[2] == "resolve":
		f.resolveFile(w, req, seg[0]+"/"+seg[1], seg[3], strings.Join(seg[4:], "/"))
	default:
		hubError(w, http.StatusNotFound, "", "no route "+req.URL.Path)
	}
}

func (f *fakeHub) serveAPI(w http.ResponseWriter, req *http.Request, repo, action, rev string) {
	r := f.repos[repo]
	if r == nil {
		hubError(w, http.StatusNotFound, "RepoNotFound", "Repository Not Found for url")
		return
	}
	if action == "refs" {
		refs := map[string][]map[string]string{"branches": {}, "converts": {}, "tags": {}}
		for n, sha := range r.branches {
			refs["branches"] = append(refs["branches"], map[string]string{"name": n, "ref": "refs/heads/" + n, "targetCommit": sha})
		}
		for n, sha := range r.tags {
			refs["tags"] = append(refs["tags"], map[string]string{"name": n, "ref": "refs/tags/" + n, "targetCommit": sha})
		}
		writeJSON(w, refs)
		return
	}
	sha := r.resolve(rev)
	if sha == "" {
		hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	switch action {
	case "revision":
		var sib []map[string]string
		for p := range r.commits[sha] {
			sib = append(sib, map[string]string{"rfilename": p})
		}
		for _, p := range f.extra {
			sib = append(sib, map[string]string{"rfilename": p})
		}
		sort.Slice(sib, func(i, j int) bool { return sib[i]["rfilename"] < sib[j]["rfilename"] })
		writeJSON(w, map[string]any{"id": repo, "sha": sha, "siblings": sib, "private": false})
	case "preupload":
		var in struct {
			Files []struct {
				Path   string `json:"path"`
				Size   int64  `json:"size"`
				Sample string `json:"sample"`
			} `json:"files"`
		}
		if json.NewDecoder(req.Body).Decode(&in) != nil {
			hubError(w, http.StatusBadRequest, "", "bad preupload body")
			return
		}
		var out []map[string]any
		for _, fl := range in.Files {
			sample, err := base64.StdEncoding.DecodeString(fl.Sample)
			if err != nil || len(sample) != int(min(fl.Size, 512)) {
				hubError(w, http.StatusBadRequest, "", "bad sample for "+fl.Path)
				return
			}
			mode := "regular"
			if isLFS(fl.Path, fl.Size) {
				mode = "lfs"
			}
			out = append(out, map[string]any{"path": fl.Path, "uploadMode": mode, "shouldIgnore": false})
		}
		writeJSON(w, map[string]any{"files": out})
	case "commit":
		f.commit(w, req, repo, r, rev, sha)
	case "tag":
		var in struct{ Tag, Message string }
		if json.NewDecoder(req.Body).Decode(&in) != nil || in.Tag == "" {
			hubError(w, http.StatusBadRequest, "", "bad tag body")
			return
		}
		if _, ok := r.tags[in.Tag]; ok {
			hubError(w, http.StatusConflict, "", "Tag already exists")
			return
		}
		r.tags[in.Tag] = sha
		writeJSON(w, map[string]string{})
	default:
		hubError(w, http.StatusNotFound, "", "no action "+action)
	}
}

// commit applies an NDJSON commit (header line first) to branch rev.
func (f *fakeHub) commit(w http.ResponseWriter, req *http.Request, repo string, r *fakeRepo, rev, parent string) {
	if req.Header.Get("Content-Type") != "application/x-ndjson" {
		hubError(w, http.StatusBadRequest, "", "want application/x-ndjson")
		return
	}
	if _, ok := r.branches[rev]; !ok {
		hubError(w, http.StatusBadRequest, "", "can only commit to a branch")
		return
	}
	tree := map[string]fakeFile{}
	for p, fl := range r.commits[parent] {
		tree[p] = fl
	}
	sc := bufio.NewScanner(req.Body)
	sc.Buffer(nil, 64<<20)
	for n := 0; sc.Scan(); n++ {
		var line struct {
			Key   string `json:"key"`
			Value struct {
				Summary, Path, Content, Encoding, Algo, Oid string
				Size                                        int64
			} `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || (n == 0) != (line.Key == "header") {
			hubError(w, http.StatusBadRequest, "", "bad commit line "+strconv.Itoa(n))
			return
		}
		v := line.Value
		switch line.Key {
		case "file":
			data, err := base64.StdEncoding.DecodeString(v.Content)
			if err != nil || v.Encoding != "base64" {
				hubError(w, http.StatusBadRequest, "", "bad file "+v.Path)
				return
			}
			tree[v.Path] = fakeFile{data: data, size: int64(len(data))}
		case "lfsFile":
			data, ok := f.lfs[v.Oid]
			if !ok || v.Algo != "sha256" || int64(len(data)) != v.Size {
				hubError(w, http.StatusUnprocessableEntity, "", "LFS object not found: "+v.Oid)
				return
			}
			tree[v.Path] = fakeFile{oid: v.Oid, size: v.Size}
		}
	}
	sha := f.commitLocked(r, rev, tree)
	writeJSON(w, map[string]string{"commitOid": sha, "commitUrl": f.hub.URL + "/" + repo + "/commit/" + sha})
}

func (f *fakeHub) createRepo(w http.ResponseWriter, req *http.Request) {
	var in struct {
		Name, Organization, Type string
		Private                  bool
	}
	if json.NewDecoder(req.Body).Decode(&in) != nil || in.Type != "model" || in.Organization == "" {
		hubError(w, http.StatusBadRequest, "", "bad create body")
		return
	}
	repo := in.Organization + "/" + in.Name
	if f.repos[repo] != nil {
		hubError(w, http.StatusConflict, "", "You already created this model repo")
		return
	}
	f.commitLocked(f.repoLocked(repo), "main", map[string]fakeFile{".gitattributes": {data: []byte("*.safetensors filter=lfs\n"), size: 24}})
	writeJSON(w, map[string]string{"url": f.hub.URL + "/" + repo})
}

func (f *fakeHub) serveLFS(w http.ResponseWriter, req *http.Request, repo, op string) {
	if op == "objects/verify" {
		var v struct {
			Oid  string
			Size int64
		}
		if json.NewDecoder(req.Body).Decode(&v) != nil || int64(len(f.lfs[v.Oid])) != v.Size {
			hubError(w, http.StatusNotFound, "", "object not stored")
		}
		return
	}
	var in struct {
		Operation string
		Transfers []string
		Objects   []struct {
			Oid  string
			Size int64
		}
	}
	if json.NewDecoder(req.Body).Decode(&in) != nil {
		hubError(w, http.StatusBadRequest, "", "bad lfs body")
		return
	}
	w.Header().Set("Content-Type", lfsMediaType)
	if req.Header.Get("Accept") != lfsMediaType || in.Operation != "upload" || len(in.Transfers) == 0 || in.Transfers[0] != "basic" {
		hubError(w, http.StatusBadRequest, "", "bad batch request")
		return
	}
	var out []map[string]any
	for _, o := range in.Objects {
		obj := map[string]any{"oid": o.Oid, "size": o.Size, "authenticated": true}
		if _, ok := f.lfs[o.Oid]; !ok {
			obj["actions"] = map[string]any{
				"upload": map[string]any{"href": f.cdn.URL + "/lfs/" + o.Oid + "?sig=ok", "header": map[string]string{"X-Sig": "s3cret"}},
				"verify": map[string]any{"href": f.hub.URL + "/" + repo + ".git/info/lfs/objects/verify", "header": map[string]string{}},
			}
		}
		out = append(out, obj)
	}
	json.NewEncoder(w).Encode(map[string]any{"transfer": "basic", "objects": out})
}

func (f *fakeHub) resolveFile(w http.ResponseWriter, req *http.Request, repo, rev, path string) {
	r := f.repos[repo]
	if r == nil {
		hubError(w, http.StatusNotFound, "RepoNotFound", "Repository Not Found")
		return
	}
	sha := r.resolve(rev)
	fl, ok := r.commits[sha][path]
	if !ok {
		hubError(w, http.StatusNotFound, "EntryNotFound", "Entry not found")
		return
	}
	w.Header().Set("X-Repo-Commit", sha)
	if fl.oid != "" {
		w.Header().Set("X-Linked-Etag", `"`+fl.oid+`"`)
		w.Header().Set("X-Linked-Size", strconv.FormatInt(fl.size, 10))
		w.Header().Set("ETag", `"`+gitBlobSHA1([]byte("pointer "+fl.oid))+`"`)
		http.Redirect(w, req, f.cdn.URL+"/lfs/"+fl.oid, http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+gitBlobSHA1(fl.data)+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(fl.data)))
	if req.Method == http.MethodGet {
		w.Write(fl.data)
	}
}

func (f *fakeHub) serveCDN(w http.ResponseWriter, req *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, "cdn "+req.Method+" "+req.URL.Path)
	f.cdnAuth = append(f.cdnAuth, req.Header.Get("Authorization"))
	oid := strings.TrimPrefix(req.URL.Path, "/lfs/")
	switch req.Method {
	case http.MethodGet:
		data, ok := f.lfs[oid]
		if !ok {
			http.NotFound(w, req)
			return
		}
		if f.corrupt[oid] {
			data = bytes.Clone(data)
			data[len(data)/2] ^= 1
		}
		w.Write(data)
	case http.MethodPut:
		data, err := io.ReadAll(req.Body)
		if err != nil || req.URL.Query().Get("sig") != "ok" || req.Header.Get("X-Sig") != "s3cret" || sha256Hex(data) != oid {
			http.Error(w, "bad upload", http.StatusBadRequest)
			return
		}
		f.lfs[oid] = data
	}
}
