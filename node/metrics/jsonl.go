package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// JSONL is an append-only log of events, one JSON object per line:
//
//	{"time":"2026-01-02T15:04:05.123456789Z","event":"step","loss":3.2,"step":10}
//
// time (RFC 3339, UTC) and event come first, then the fields sorted by
// name. A float field that is NaN or ±Inf, which JSON cannot hold, is
// written as the string "NaN", "+Inf" or "-Inf" (as Prometheus spells
// them, and as strconv.ParseFloat reads them), so that a diverged loss is
// recorded rather than lost.
//
// Each line goes to the file in one write on a file opened with O_APPEND,
// so lines from concurrent writers never interleave. A JSONL is safe for
// concurrent use.
type JSONL struct {
	path string
	mu   sync.Mutex
	f    *os.File // nil once closed
	now  func() time.Time
}

// OpenJSONL opens the log at path for appending, creating it and its parent
// directories as needed, so that a resumed run continues the same file. A
// torn last line left by a crash mid-write is cut off first (or, if it is a
// whole object missing only its newline, completed) so that the file stays
// readable.
func OpenJSONL(path string) (*JSONL, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open metrics log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open metrics log: %w", err)
	}
	if err := repairTail(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("open metrics log %s: %w", path, err)
	}
	return &JSONL{path: path, f: f, now: time.Now}, nil
}

// Path is the file the log writes to.
func (j *JSONL) Path() string { return j.path }

// reserved are the keys every line has; fields may not use them.
var reserved = []string{"time", "event"}

// Write appends one event. fields may be nil; their values must encode as
// JSON. Float values may be NaN or ±Inf, also inside []float64, []float32,
// []any, map[string]any and map[string]float64 (not inside structs). It
// fails, writing nothing, on a field named "time" or "event" or a value
// that does not encode.
func (j *JSONL) Write(event string, fields map[string]any) error {
	line, err := j.encode(event, fields)
	if err != nil {
		return fmt.Errorf("metrics log event %q: %w", event, err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return fmt.Errorf("metrics log %s: %w", j.path, os.ErrClosed)
	}
	if _, err := j.f.Write(line); err != nil {
		return fmt.Errorf("metrics log %s: %w", j.path, err)
	}
	return nil
}

// Record returns the event as ReadJSONL would read its line back, written
// now: for a reader fed live (a dashboard) that must see what a reader of
// the file sees.
func Record(event string, fields map[string]any) (map[string]any, error) {
	line, err := (&JSONL{now: time.Now}).encode(event, fields)
	if err != nil {
		return nil, fmt.Errorf("metrics event %q: %w", event, err)
	}
	return parseObject(line)
}

// encode renders one line, newline included.
func (j *JSONL) encode(event string, fields map[string]any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"time":`)
	writeJSON(&b, j.now().UTC().Format(time.RFC3339Nano))
	b.WriteString(`,"event":`)
	writeJSON(&b, event)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if slices.Contains(reserved, k) {
			return nil, fmt.Errorf("field %q is reserved", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, err := json.Marshal(finite(fields[k]))
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
		b.WriteByte(',')
		writeJSON(&b, k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// writeJSON writes a string as JSON; strings always encode.
func writeJSON(b *bytes.Buffer, s string) {
	v, _ := json.Marshal(s)
	b.Write(v)
}

// finite replaces NaN and ±Inf, in plain floats and in float slices and
// maps, with their names as strings.
func finite(v any) any {
	switch v := v.(type) {
	case float64:
		return floatValue(v)
	case float32:
		return floatValue(float64(v))
	case []float64:
		out := make([]any, len(v))
		for i, f := range v {
			out[i] = floatValue(f)
		}
		return out
	case []float32:
		out := make([]any, len(v))
		for i, f := range v {
			out[i] = floatValue(float64(f))
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = finite(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = finite(e)
		}
		return out
	case map[string]float64:
		out := make(map[string]any, len(v))
		for k, f := range v {
			out[k] = floatValue(f)
		}
		return out
	}
	return v
}

func floatValue(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return f
}

// Close closes the file after syncing it to disk. Writes after Close fail
// with os.ErrClosed; a second Close does nothing.
func (j *JSONL) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	f := j.f
	j.f = nil
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close metrics log %s: %w", j.path, err)
	}
	return nil
}

// ReadJSONL reads a log written by JSONL (or any JSONL file of objects).
// A last line without a newline that does not parse is a write torn by a
// crash and is skipped; any other line that is not a JSON object is an
// error naming its line number. Numbers come back as float64.
func ReadJSONL(path string) ([]map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read metrics log: %w", err)
	}
	defer f.Close()
	var events []map[string]any
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read metrics log %s: %w", path, err)
		}
		torn := errors.Is(err, io.EOF)
		if torn && len(line) == 0 {
			return events, nil
		}
		m, perr := parseObject(line)
		switch {
		case perr == nil:
			events = append(events, m)
		case !torn:
			return nil, fmt.Errorf("read metrics log %s:%d: %w", path, n, perr)
		}
		if torn {
			return events, nil
		}
	}
}

// parseObject parses one line as a JSON object.
func parseObject(line []byte) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// repairTail makes f end in a newline (or be empty) so that appended lines
// start on their own line: a torn last line is cut off, or completed with
// a newline if it is a whole JSON object.
func repairTail(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size == 0 {
		return nil
	}
	lastNL, err := lastNewline(f, size)
	if err != nil {
		return err
	}
	if lastNL == size-1 {
		return nil
	}
	tail := make([]byte, size-lastNL-1)
	if _, err := f.ReadAt(tail, lastNL+1); err != nil {
		return fmt.Errorf("read torn last line: %w", err)
	}
	if _, err := parseObject(tail); err == nil {
		_, err = f.Write([]byte{'\n'})
		return err
	}
	return f.Truncate(lastNL + 1)
}

// lastNewline returns the offset of the last '\n' in the first size bytes
// of f, or -1.
func lastNewline(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		chunk := buf[:end-start]
		if _, err := f.ReadAt(chunk, start); err != nil {
			return 0, fmt.Errorf("find last line: %w", err)
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			return start + int64(i), nil
		}
		end = start
	}
	return -1, nil
}
