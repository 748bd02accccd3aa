package hub

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtrain-dev/dtrain/node/hub/hubtest"
)

func TestTagAndLatestEpochTag(t *testing.T) {
	f := hubtest.New(t)
	sha := f.Seed("org/run", map[string][]byte{"config.json": []byte("{}")})
	c := newTestClient(t, f)
	ctx := testCtx(t)
	for _, tag := range []string{"run1.3", "run1.12", "run2.40", "other", "run1.x", "run1.013", "run1.4.5"} {
		if err := c.Tag(ctx, "org/run", "main", tag, "checkpoint"); err != nil {
			t.Fatalf("tag %s: %v", tag, err)
		}
	}
	err := c.Tag(ctx, "org/run", sha, "run1.3", "again")
	if !errors.Is(err, ErrTagExists) {
		t.Fatalf("re-tagging: %v, want ErrTagExists", err)
	}
	tag, epoch, err := c.LatestEpochTag(ctx, "org/run", "run1")
	if err != nil || tag != "run1.12" || epoch != 12 {
		t.Fatalf("LatestEpochTag(run1) = %q, %d, %v; want run1.12, 12", tag, epoch, err)
	}
	if tag, epoch, err = c.LatestEpochTag(ctx, "org/run", "run2"); tag != "run2.40" || epoch != 40 {
		t.Fatalf("LatestEpochTag(run2) = %q, %d, %v", tag, epoch, err)
	}
	if _, _, err := c.LatestEpochTag(ctx, "org/run", "run3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("run without tags: %v, want ErrNotFound", err)
	}
	// A tag is a revision: downloading it gives the tagged commit.
	snap, err := c.Download(ctx, "org/run", "run1.12", nil)
	if err != nil || filepath.Base(snap) != sha {
		t.Fatalf("download tag: %s, %v", snap, err)
	}
}

func TestParseEpochTag(t *testing.T) {
	for _, tc := range []struct {
		tag, run string
		epoch    uint64
		ok       bool
	}{
		{"run1.3", "run1", 3, true},
		{"run1.0", "run1", 0, true},
		{"a.b.7", "a.b", 7, true},
		{"run1.03", "run1", 0, false},
		{"run1.", "run1", 0, false},
		{"run1.-1", "run1", 0, false},
		{"run12.3", "run1", 0, false},
		{"run1.3", "", 0, false},
		{"run1.18446744073709551616", "run1", 0, false},
	} {
		e, ok := ParseEpochTag(tc.tag, tc.run)
		if e != tc.epoch || ok != tc.ok {
			t.Errorf("ParseEpochTag(%q, %q) = %d, %v; want %d, %v", tc.tag, tc.run, e, ok, tc.epoch, tc.ok)
		}
		if ok && EpochTag(tc.run, e) != tc.tag {
			t.Errorf("EpochTag does not invert ParseEpochTag for %q", tc.tag)
		}
	}
}

func TestErrorsMapToSentinels(t *testing.T) {
	f := hubtest.New(t)
	f.Seed("org/m", map[string][]byte{"config.json": []byte("{}")})
	f.SetToken("hf_right")
	for _, tc := range []struct {
		name, token, repo, rev string
		files                  []string
		want                   error
		msg                    string
	}{
		{"no token", "", "org/m", "main", nil, ErrUnauthorized, "Invalid credentials"},
		{"wrong token", "hf_wrong", "org/m", "main", nil, ErrUnauthorized, "Invalid credentials"},
		{"missing repo", "hf_right", "org/none", "main", nil, ErrNotFound, "Repository Not Found"},
		{"missing revision", "hf_right", "org/m", "v9", nil, ErrNotFound, "RevisionNotFound"},
		{"missing file", "hf_right", "org/m", "main", []string{"nope.bin"}, ErrNotFound, "EntryNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, f, WithToken(tc.token))
			_, err := c.Download(testCtx(t), tc.repo, tc.rev, tc.files)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err %q does not carry the server's %q", err, tc.msg)
			}
		})
	}
	c := newTestClient(t, f, WithToken("hf_right"))
	if _, err := c.Download(testCtx(t), "org/m", "main", nil); err != nil {
		t.Fatal(err)
	}
	auth := f.HubAuth()
	if got := auth[len(auth)-1]; got != "Bearer hf_right" {
		t.Fatalf("Authorization %q, want Bearer hf_right", got)
	}
}
