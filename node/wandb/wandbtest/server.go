// Package wandbtest is a local stand-in for the two W&B endpoints that
// node/wandb uses (its package doc names them): it keeps each run's
// config, history lines and summary in memory, answers upsertBucket with
// the run's historyLineCount, and can fail (HTTP 500) or hang on demand.
package wandbtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Run is what the server holds of one run.
type Run struct {
	Entity, Project, Name, Group, JobType string
	Config                                map[string]any
	History                               []map[string]any
	Summary                               map[string]any
	Complete                              bool
	Upserts                               int
}

// Server is the stand-in.
type Server struct {
	*httptest.Server
	Key string

	mu     sync.Mutex
	runs   map[string]*Run
	fail   int  // answer this many requests with 500
	hang   bool // hold every request until the client gives up
	unhang chan struct{}
	Posts  int // file_stream requests served
	badOff int // file_stream posts whose offset was not the history's length
}

// New starts a server that takes key.
func New(key string) *Server {
	s := &Server{Key: key, runs: map[string]*Run{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Env starts a Server that takes the key "secret" and points the process's
// W&B settings at it for t ($WANDB_API_KEY, $WANDB_BASE_URL), as a user's
// environment would; it stops when t ends.
func Env(t testing.TB) *Server {
	s := New("secret")
	t.Cleanup(s.Close)
	t.Setenv("WANDB_API_KEY", s.Key)
	t.Setenv("WANDB_BASE_URL", s.URL)
	return s
}

// Fail makes the next n requests answer 500.
func (s *Server) Fail(n int) { s.mu.Lock(); s.fail = n; s.mu.Unlock() }

// Hang makes every request hang (true) until its client gives up, or be
// served again (false: the hanging ones end).
func (s *Server) Hang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case on && !s.hang:
		s.unhang = make(chan struct{})
	case !on && s.hang:
		close(s.unhang)
	}
	s.hang = on
}

// Run returns a copy of the run entity/project/name, nil if unknown.
func (s *Server) Run(path string) *Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.runs[path]
	if r == nil {
		return nil
	}
	c := *r
	c.History = append([]map[string]any(nil), r.History...)
	return &c
}

// BadOffsets counts file_stream posts whose offset was not the length of
// the history the server held.
func (s *Server) BadOffsets() int { s.mu.Lock(); defer s.mu.Unlock(); return s.badOff }

func (s *Server) serve(w http.ResponseWriter, req *http.Request) {
	s.mu.Lock()
	hang, fail, unhang := s.hang, s.fail > 0, s.unhang
	if fail {
		s.fail--
	}
	s.mu.Unlock()
	if hang {
		// Read the body first: the server notices a client that gives up
		// only once it reads on the connection again.
		_, _ = io.Copy(io.Discard, req.Body)
		select {
		case <-req.Context().Done():
		case <-unhang:
		}
		return
	}
	if user, key, ok := req.BasicAuth(); !ok || user != "api" || key != s.Key {
		http.Error(w, "bad key", http.StatusUnauthorized)
		return
	}
	if fail {
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	}
	switch {
	case req.Method == http.MethodPost && req.URL.Path == "/graphql":
		s.graphql(w, req)
	case req.Method == http.MethodPost && strings.HasPrefix(req.URL.Path, "/files/") && strings.HasSuffix(req.URL.Path, "/file_stream"):
		s.fileStream(w, req, strings.TrimSuffix(strings.TrimPrefix(req.URL.Path, "/files/"), "/file_stream"))
	default:
		http.NotFound(w, req)
	}
}

func (s *Server) graphql(w http.ResponseWriter, req *http.Request) {
	var q struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	if err := json.NewDecoder(req.Body).Decode(&q); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	str := func(k string) string { v, _ := q.Variables[k].(string); return v }
	switch {
	case strings.Contains(q.Query, "viewer"):
		writeJSON(w, map[string]any{"data": map[string]any{"viewer": map[string]any{"id": "u1", "entity": "tester"}}})
	case strings.Contains(q.Query, "upsertBucket"):
		var cfg map[string]any
		if c := str("config"); c != "" {
			if err := json.Unmarshal([]byte(c), &cfg); err != nil {
				writeJSON(w, map[string]any{"errors": []any{map[string]any{"message": "config is not a JSONString"}}})
				return
			}
		}
		path := str("entity") + "/" + str("project") + "/" + str("name")
		s.mu.Lock()
		r, inserted := s.runs[path], false
		if r == nil {
			r, inserted = &Run{Entity: str("entity"), Project: str("project"), Name: str("name")}, true
			s.runs[path] = r
		}
		r.Group, r.JobType, r.Config = str("groupName"), str("jobType"), cfg
		r.Upserts++
		n := len(r.History)
		s.mu.Unlock()
		writeJSON(w, map[string]any{"data": map[string]any{"upsertBucket": map[string]any{
			"bucket": map[string]any{"id": path, "name": str("name"), "historyLineCount": n}, "inserted": inserted}}})
	default:
		writeJSON(w, map[string]any{"errors": []any{map[string]any{"message": "unknown query"}}})
	}
}

func (s *Server) fileStream(w http.ResponseWriter, req *http.Request, path string) {
	var body struct {
		Files map[string]struct {
			Offset  int      `json:"offset"`
			Content []string `json:"content"`
		} `json:"files"`
		Complete *bool `json:"complete"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.runs[path]
	if r == nil {
		http.NotFound(w, req)
		return
	}
	s.Posts++
	if h, ok := body.Files["wandb-history.jsonl"]; ok {
		if h.Offset != len(r.History) {
			s.badOff++
		}
		for _, line := range h.Content {
			var row map[string]any
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				http.Error(w, "bad row", http.StatusBadRequest)
				return
			}
			r.History = append(r.History, row)
		}
	}
	if sm, ok := body.Files["wandb-summary.json"]; ok && len(sm.Content) > 0 {
		_ = json.Unmarshal([]byte(sm.Content[0]), &r.Summary)
	}
	if body.Complete != nil && *body.Complete {
		r.Complete = true
	}
	writeJSON(w, map[string]any{})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
