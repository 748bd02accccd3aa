package metrics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func openAt(t *testing.T, path string, now time.Time) *JSONL {
	t.Helper()
	j, err := OpenJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	j.now = func() time.Time { return now }
	return j
}

func TestJSONLRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "sub", "metrics.jsonl") // parents are created
	when := time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.FixedZone("X", 3600))
	j := openAt(t, path, when)
	events := []struct {
		event  string
		fields map[string]any
	}{
		{"start", nil},
		{"step", map[string]any{"step": 10, "loss": 3.25, "lr": 1e-3, "tokens": int64(81920), "note": "<ok> & \"quoted\""}},
		{"diverged", map[string]any{"loss": math.NaN(), "grad_norm": math.Inf(1), "min": float32(math.Inf(-1)),
			"losses": []float64{1, math.NaN()}, "nested": map[string]any{"x": math.Inf(1), "ok": true}}},
	}
	for _, e := range events {
		if err := j.Write(e.event, e.fields); err != nil {
			t.Fatalf("Write(%s): %v", e.event, err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	wantLine1 := `{"time":"2026-01-02T14:04:05.123456789Z","event":"step","loss":3.25,"lr":0.001,"note":"\u003cok\u003e \u0026 \"quoted\"","step":10,"tokens":81920}`
	if len(lines) != 3 || lines[1] != wantLine1 {
		t.Fatalf("file:\n%s\nwant line 2:\n%s", raw, wantLine1)
	}
	got, err := ReadJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"time": "2026-01-02T14:04:05.123456789Z", "event": "start"},
		{"time": "2026-01-02T14:04:05.123456789Z", "event": "step", "step": 10.0, "loss": 3.25, "lr": 1e-3,
			"tokens": 81920.0, "note": "<ok> & \"quoted\""},
		{"time": "2026-01-02T14:04:05.123456789Z", "event": "diverged", "loss": "NaN", "grad_norm": "+Inf", "min": "-Inf",
			"losses": []any{1.0, "NaN"}, "nested": map[string]any{"x": "+Inf", "ok": true}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadJSONL =\n%v\nwant\n%v", got, want)
	}
}

func TestJSONLWriteErrors(t *testing.T) {
	j := openAt(t, filepath.Join(t.TempDir(), "m.jsonl"), time.Unix(0, 0))
	for name, fields := range map[string]map[string]any{
		"reserved time":  {"time": 1},
		"reserved event": {"event": "x"},
		"unencodable":    {"ch": make(chan int)},
		"NaN in struct":  {"s": struct{ F float64 }{math.NaN()}},
	} {
		if err := j.Write("e", fields); err == nil {
			t.Errorf("%s: Write succeeded", name)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Write("late", nil); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close = %v, want os.ErrClosed", err)
	}
	if err := j.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if got, err := ReadJSONL(j.Path()); err != nil || len(got) != 0 {
		t.Errorf("after only failed writes the log holds %v, %v; want nothing", got, err)
	}
}

// TestJSONLAppendsAcrossReopen is a resumed run: the second process
// continues the first one's file.
func TestJSONLAppendsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.jsonl")
	for run := range 3 {
		j := openAt(t, path, time.Unix(int64(run), 0))
		for step := range 2 {
			if err := j.Write("step", map[string]any{"run": run, "step": step}); err != nil {
				t.Fatal(err)
			}
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 {
		t.Fatalf("read %d events, want 6", len(got))
	}
	for i, e := range got {
		if e["run"] != float64(i/2) || e["step"] != float64(i%2) {
			t.Errorf("event %d = %v, want run %d step %d", i, e, i/2, i%2)
		}
	}
}

// TestJSONLTornLastLine is a crash in the middle of a write, then a
// resume: the reader skips the torn line, and reopening cuts it off so the
// next line starts clean.
func TestJSONLTornLastLine(t *testing.T) {
	cases := []struct {
		name     string
		tail     string
		wantRead int // events ReadJSONL returns before the reopen
	}{
		{"torn mid-object", `{"time":"2026-01-01T00:00:00Z","event":"st`, 1},
		{"only the newline missing", `{"time":"2026-01-01T00:00:00Z","event":"step"}`, 2},
		{"a lone byte", `{`, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.jsonl")
			first := `{"time":"2026-01-01T00:00:00Z","event":"start"}` + "\n"
			if err := os.WriteFile(path, []byte(first+tc.tail), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadJSONL(path)
			if err != nil || len(got) != tc.wantRead {
				t.Fatalf("ReadJSONL = %d events, %v; want %d", len(got), err, tc.wantRead)
			}
			j := openAt(t, path, time.Unix(0, 0))
			if err := j.Write("resumed", nil); err != nil {
				t.Fatal(err)
			}
			j.Close()
			got, err = ReadJSONL(path)
			if err != nil || len(got) != tc.wantRead+1 || got[len(got)-1]["event"] != "resumed" {
				t.Fatalf("after resume ReadJSONL = %v, %v; want %d events ending in resumed", got, err, tc.wantRead+1)
			}
		})
	}
}

func TestReadJSONLStrictInTheMiddle(t *testing.T) {
	cases := map[string]string{
		"torn line in the middle": "{\"a\":1}\n{\"a\":\n{\"a\":2}\n",
		"blank line":              "{\"a\":1}\n\n{\"a\":2}\n",
		"not an object":           "{\"a\":1}\n[1,2]\n",
		"null":                    "null\n{\"a\":1}\n",
	}
	for name, doc := range cases {
		path := filepath.Join(t.TempDir(), "m.jsonl")
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadJSONL(path); err == nil || !strings.Contains(err.Error(), "m.jsonl:") {
			t.Errorf("%s: ReadJSONL = %v, want an error naming the file and line", name, err)
		}
	}
	if _, err := ReadJSONL(filepath.Join(t.TempDir(), "none.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestJSONLConcurrentWriters writes from many goroutines through two
// handles on the same file (two processes would do the same) and requires
// every line whole.
func TestJSONLConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.jsonl")
	a, b := openAt(t, path, time.Unix(0, 0)), openAt(t, path, time.Unix(0, 0))
	const writers, each = 8, 200
	pad := strings.Repeat("x", 3000) // lines bigger than a pipe buffer
	var wg sync.WaitGroup
	for w := range writers {
		j := a
		if w%2 == 1 {
			j = b
		}
		wg.Go(func() {
			for i := range each {
				if err := j.Write("step", map[string]any{"w": w, "i": i, "pad": pad}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	a.Close()
	b.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for n, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
		var e map[string]any
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("line %d is not whole: %v: %.80s", n+1, err, line)
		}
		seen[fmt.Sprint(e["w"], "/", e["i"])] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct events, want %d", len(seen), writers*each)
	}
}
