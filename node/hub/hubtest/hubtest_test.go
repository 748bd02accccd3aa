package hubtest

import (
	"net/http"
	"strings"
	"testing"
)

// The accessors the hub tests do not reach: Tags and Log see what a client did.
func TestTagsAndLogSeeRequests(t *testing.T) {
	s := New(t)
	sha := s.Seed("org/m", map[string][]byte{"config.json": []byte("{}")})
	s.SetToken("hf_x")
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/api/models/org/m/tag/main", strings.NewReader(`{"tag":"run.1"}`))
	req.Header.Set("Authorization", "Bearer hf_x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tag: status %d", resp.StatusCode)
	}
	if got := s.Tags("org/m"); len(got) != 1 || got["run.1"] != sha {
		t.Fatalf("Tags = %v, want run.1 -> %s", got, sha)
	}
	if got, ok := s.File("org/m", "run.1", "config.json"); !ok || string(got) != "{}" {
		t.Fatalf("File at the tag = %q, %v", got, ok)
	}
	if log := s.Log(); len(log) != 1 || log[0] != "POST /api/models/org/m/tag/main" {
		t.Fatalf("Log = %q", log)
	}
	if s.Tags("org/none") != nil {
		t.Fatal("Tags of a missing repo is not nil")
	}
}
