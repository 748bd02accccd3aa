package hubtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// lfsMediaType is the Git LFS batch API's content type.
const lfsMediaType = "application/vnd.git-lfs+json"

// serveLFS answers the Git LFS batch API (upload only), sending objects the
// Hub lacks to the CDN with a signed URL, and the verify call after.
func (s *Server) serveLFS(w http.ResponseWriter, req *http.Request, repo, op string) {
	if op == "objects/verify" {
		var v struct {
			Oid  string
			Size int64
		}
		if json.NewDecoder(req.Body).Decode(&v) != nil || int64(len(s.lfs[v.Oid])) != v.Size {
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
		if _, ok := s.lfs[o.Oid]; !ok {
			obj["actions"] = map[string]any{
				"upload": map[string]any{"href": s.cdn.URL + "/lfs/" + o.Oid + "?sig=ok", "header": map[string]string{"X-Sig": "s3cret"}},
				"verify": map[string]any{"href": s.hub.URL + "/" + repo + ".git/info/lfs/objects/verify", "header": map[string]string{}},
			}
		}
		out = append(out, obj)
	}
	json.NewEncoder(w).Encode(map[string]any{"transfer": "basic", "objects": out})
}

// serveCDN stores and serves LFS objects; an upload must carry the signature
// serveLFS handed out and match its oid.
func (s *Server) serveCDN(w http.ResponseWriter, req *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, "cdn "+req.Method+" "+req.URL.Path)
	s.cdnAuth = append(s.cdnAuth, req.Header.Get("Authorization"))
	oid := strings.TrimPrefix(req.URL.Path, "/lfs/")
	switch req.Method {
	case http.MethodGet:
		data, ok := s.lfs[oid]
		if !ok {
			http.NotFound(w, req)
			return
		}
		if s.corrupt[oid] {
			data = bytes.Clone(data)
			data[len(data)/2] ^= 1
		}
		w.Write(data)
	case http.MethodPut:
		data, err := io.ReadAll(req.Body)
		if err != nil || req.URL.Query().Get("sig") != "ok" || req.Header.Get("X-Sig") != "s3cret" || LFSOid(data) != oid {
			http.Error(w, "bad upload", http.StatusBadRequest)
			return
		}
		s.lfs[oid] = data
	}
}
