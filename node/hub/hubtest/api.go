package hubtest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// hubError answers as the Hub does: X-Error-Code and X-Error-Message headers
// (what clients branch on) and a JSON body.
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

// serveHub routes a Hub request; every request is logged, and the token and
// FailNext checks come before any route.
func (s *Server) serveHub(w http.ResponseWriter, req *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, req.Method+" "+req.URL.EscapedPath())
	s.hubAuth = append(s.hubAuth, req.Header.Get("Authorization"))
	if s.token != "" && req.Header.Get("Authorization") != "Bearer "+s.token {
		hubError(w, http.StatusUnauthorized, "", "Invalid credentials in Authorization header")
		return
	}
	if s.failNext > 0 && (req.Method == http.MethodGet || req.Method == http.MethodHead) {
		s.failNext--
		hubError(w, http.StatusServiceUnavailable, "", "try again")
		return
	}
	seg := strings.Split(strings.TrimPrefix(req.URL.EscapedPath(), "/"), "/")
	for i, s := range seg {
		seg[i], _ = url.PathUnescape(s)
	}
	switch {
	case len(seg) == 3 && seg[0] == "api" && seg[1] == "repos" && seg[2] == "create":
		s.createRepo(w, req)
	case len(seg) >= 5 && seg[0] == "api" && seg[1] == "models":
		s.serveAPI(w, req, seg[2]+"/"+seg[3], seg[4], strings.Join(seg[5:], "/"))
	case len(seg) >= 6 && strings.HasSuffix(seg[1], ".git") && seg[2] == "info" && seg[3] == "lfs":
		s.serveLFS(w, req, seg[0]+"/"+strings.TrimSuffix(seg[1], ".git"), strings.Join(seg[4:], "/"))
	case len(seg) >= 5 && seg[2] == "resolve":
		s.resolveFile(w, req, seg[0]+"/"+seg[1], seg[3], strings.Join(seg[4:], "/"))
	default:
		hubError(w, http.StatusNotFound, "", "no route "+req.URL.Path)
	}
}

// serveAPI answers /api/models/{repo}/{action}/{rev}.
func (s *Server) serveAPI(w http.ResponseWriter, req *http.Request, repo, action, rev string) {
	r := s.repos[repo]
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
		for _, p := range s.extra {
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
		s.commit(w, req, repo, r, rev, sha)
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
func (s *Server) commit(w http.ResponseWriter, req *http.Request, repo string, r *repository, rev, parent string) {
	if req.Header.Get("Content-Type") != "application/x-ndjson" {
		hubError(w, http.StatusBadRequest, "", "want application/x-ndjson")
		return
	}
	if _, ok := r.branches[rev]; !ok {
		hubError(w, http.StatusBadRequest, "", "can only commit to a branch")
		return
	}
	tree := map[string]file{}
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
			tree[v.Path] = file{data: data, size: int64(len(data))}
		case "lfsFile":
			data, ok := s.lfs[v.Oid]
			if !ok || v.Algo != "sha256" || int64(len(data)) != v.Size {
				hubError(w, http.StatusUnprocessableEntity, "", "LFS object not found: "+v.Oid)
				return
			}
			tree[v.Path] = file{oid: v.Oid, size: v.Size}
		}
	}
	sha := s.commitLocked(r, rev, tree)
	writeJSON(w, map[string]string{"commitOid": sha, "commitUrl": s.hub.URL + "/" + repo + "/commit/" + sha})
}

// createRepo creates a model repo whose first commit holds .gitattributes, as
// the Hub does; 409 when it exists.
func (s *Server) createRepo(w http.ResponseWriter, req *http.Request) {
	var in struct {
		Name, Organization, Type string
		Private                  bool
	}
	if json.NewDecoder(req.Body).Decode(&in) != nil || in.Type != "model" || in.Organization == "" {
		hubError(w, http.StatusBadRequest, "", "bad create body")
		return
	}
	repo := in.Organization + "/" + in.Name
	if s.repos[repo] != nil {
		hubError(w, http.StatusConflict, "", "You already created this model repo")
		return
	}
	s.commitLocked(s.repoLocked(repo), "main", map[string]file{".gitattributes": {data: []byte("*.safetensors filter=lfs\n"), size: 24}})
	writeJSON(w, map[string]string{"url": s.hub.URL + "/" + repo})
}

// resolveFile serves a regular file itself and redirects an LFS file to the
// CDN, with the headers the Hub sends for each.
func (s *Server) resolveFile(w http.ResponseWriter, req *http.Request, repo, rev, path string) {
	r := s.repos[repo]
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
		w.Header().Set("ETag", `"`+GitBlobSHA1([]byte("pointer "+fl.oid))+`"`)
		http.Redirect(w, req, s.cdn.URL+"/lfs/"+fl.oid, http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+GitBlobSHA1(fl.data)+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(fl.data)))
	if req.Method == http.MethodGet {
		w.Write(fl.data)
	}
}
