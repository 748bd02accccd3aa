package score

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/metrics"
)

// sampleWeights is a small real Weights, a slow miner among two.
func sampleWeights(t *testing.T) Weights {
	t.Helper()
	s := mustNew(t, DefaultConfig(), 5)
	observeAll(t, s, honestEpoch(5, "fast", link{mbps(300), 10 * time.Millisecond}, 0.02))
	observeAll(t, s, honestEpoch(5, "slow", link{mbps(40), 90 * time.Millisecond}, 0.02))
	return mustWeights(t, s, 5)
}

// TestJSONLSink: each Write appends one "weights" line that reads back as
// the Weights written.
func TestJSONLSink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weights.jsonl")
	sink, err := OpenJSONLSink(path)
	if err != nil {
		t.Fatal(err)
	}
	w := sampleWeights(t)
	w2 := w
	w2.Epoch = 6
	for _, x := range []Weights{w, w2} {
		if err := sink.Write(context.Background(), x); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	events, err := metrics.ReadJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 {
		t.Fatalf("%d lines, want 2", len(events))
	}
	for i, want := range []Weights{w, w2} {
		if events[i]["event"] != "weights" {
			t.Fatalf("line %d: event %v", i, events[i]["event"])
		}
		delete(events[i], "event")
		delete(events[i], "time")
		raw, err := json.Marshal(events[i])
		if err != nil {
			t.Fatal(err)
		}
		var got Weights
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("line %d reads back as\n%+v\nwant\n%+v", i, got, want)
		}
	}
}

// TestHTTPSink: the body is the Weights as JSON; 5xx and 429 are retried
// up to the attempts, 4xx are not; a hung server, a huge response or a
// cancelled context end a Write within its bounds.
func TestHTTPSink(t *testing.T) {
	w := sampleWeights(t)
	fast := []HTTPOption{WithBackoff(time.Millisecond), WithTimeout(2 * time.Second)}
	for _, c := range []struct {
		name     string
		statuses []int // per request; the last repeats
		attempts int
		wantErr  bool
		wantReqs int32
	}{
		{"ok", []int{200}, 3, false, 1},
		{"no content", []int{204}, 3, false, 1},
		{"503 then ok", []int{503, 503, 200}, 3, false, 3},
		{"429 then ok", []int{429, 200}, 3, false, 2},
		{"500 always", []int{500}, 3, true, 3},
		{"400 not retried", []int{400}, 3, true, 1},
		{"one attempt", []int{503}, 1, true, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var reqs atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				n := int(reqs.Add(1))
				var got Weights
				if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Authorization") != "Bearer k" {
					t.Errorf("request %s with headers %v", r.Method, r.Header)
				}
				if err := json.NewDecoder(r.Body).Decode(&got); err != nil || !reflect.DeepEqual(got, w) {
					t.Errorf("body decodes as %+v (%v), want %+v", got, err, w)
				}
				rw.WriteHeader(c.statuses[min(n, len(c.statuses))-1])
			}))
			defer srv.Close()
			sink, err := NewHTTPSink(srv.URL, append(fast, WithAttempts(c.attempts), WithHeader("Authorization", "Bearer k"))...)
			if err != nil {
				t.Fatal(err)
			}
			err = sink.Write(context.Background(), w)
			if (err != nil) != c.wantErr {
				t.Fatalf("Write: %v, want error %v", err, c.wantErr)
			}
			if n := reqs.Load(); n != c.wantReqs {
				t.Fatalf("%d requests, want %d", n, c.wantReqs)
			}
		})
	}

	t.Run("hung server", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			<-release
		}))
		defer srv.Close()
		defer close(release)
		sink, err := NewHTTPSink(srv.URL, WithTimeout(100*time.Millisecond), WithAttempts(2), WithBackoff(10*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = sink.Write(context.Background(), w)
		if took := time.Since(start); err == nil || took > 5*time.Second {
			t.Fatalf("Write to a hung server: %v after %v, want an error after about 210 ms", err, took)
		}
	})

	t.Run("huge response", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rw.WriteHeader(http.StatusBadRequest)
			chunk := []byte(strings.Repeat("x", 1<<16))
			for range 16 << 10 { // 1 GiB unless the client stops reading
				if _, err := rw.Write(chunk); err != nil {
					return
				}
			}
		}))
		defer srv.Close()
		sink, err := NewHTTPSink(srv.URL, fast...)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = sink.Write(context.Background(), w)
		if took := time.Since(start); err == nil || !strings.Contains(err.Error(), "400") || took > 5*time.Second {
			t.Fatalf("Write with a 1 GiB error body: %v after %v, want a prompt 400", err, took)
		}
	})

	t.Run("cancelled during backoff", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rw.WriteHeader(http.StatusServiceUnavailable)
		}))
		defer srv.Close()
		sink, err := NewHTTPSink(srv.URL, WithBackoff(time.Minute), WithAttempts(5))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = sink.Write(ctx, w)
		if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > 5*time.Second {
			t.Fatalf("Write cancelled during a 1 min backoff: %v after %v", err, took)
		}
	})

	t.Run("body over the limit", func(t *testing.T) {
		var reqs atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			reqs.Add(1)
			io.Copy(io.Discard, r.Body)
		}))
		defer srv.Close()
		sink, err := NewHTTPSink(srv.URL, WithMaxBody(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := sink.Write(context.Background(), w); err == nil || reqs.Load() != 0 {
			t.Fatalf("Write of a body over the limit: %v, %d requests; want an error and none", err, reqs.Load())
		}
	})

	for _, bad := range []string{"", "ftp://x/y", "http://", "://x", "localhost:8080"} {
		if _, err := NewHTTPSink(bad); err == nil {
			t.Errorf("NewHTTPSink(%q) accepted", bad)
		}
	}
	for _, opt := range []HTTPOption{WithAttempts(0), WithAttempts(11), WithTimeout(0), WithBackoff(-1), WithClient(nil), WithMaxBody(0)} {
		if _, err := NewHTTPSink("http://x", opt); err == nil {
			t.Error("a bad option accepted")
		}
	}
}

// TestSinks: every sink gets the Weights even if one fails, and the error
// says so.
func TestSinks(t *testing.T) {
	var got []uint64
	ok := sinkFunc(func(_ context.Context, w Weights) error { got = append(got, w.Epoch); return nil })
	failing := sinkFunc(func(context.Context, Weights) error { return errors.New("down") })
	err := Sinks{failing, ok}.Write(context.Background(), Weights{Epoch: 3})
	if err == nil || !strings.Contains(err.Error(), "down") || !reflect.DeepEqual(got, []uint64{3}) {
		t.Fatalf("Sinks.Write: %v, the other sink got %v", err, got)
	}
}

type sinkFunc func(context.Context, Weights) error

func (f sinkFunc) Write(ctx context.Context, w Weights) error { return f(ctx, w) }
