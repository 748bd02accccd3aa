package metrics

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// get GETs url and returns its body.
func get(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(body)
}

// samples parses Prometheus text exposition into "name{labels}" → value.
func samples(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestTrainingServedOverHTTP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := NewTraining("exp-1")
	addr, err := Serve(ctx, "127.0.0.1:0", tr.Registry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("Serve returned %s, want the bound port", addr)
	}

	tr.SetStep(40)
	tr.ObserveStep(StepStats{Step: 41, Loss: 3.5, LR: 1e-3, GradNorm: 0.75, Tokens: 8192,
		Took: 2 * time.Second, DataWait: 250 * time.Millisecond})
	tr.ObserveStep(StepStats{Step: 42, Loss: 3.25, LR: 9e-4, GradNorm: 0.5, Tokens: 8192,
		Took: 500 * time.Millisecond, DataWait: 250 * time.Millisecond})
	tr.ObserveEval(3.4)
	tr.ObserveCheckpoint(300 * time.Millisecond)
	tr.ObserveCheckpoint(30 * time.Second)

	got := samples(t, get(t, "http://"+addr+"/metrics"))
	const run = `{run="exp-1"}`
	want := map[string]float64{
		"dtrain_step" + run:                                      42,
		"dtrain_train_loss" + run:                                3.25,
		"dtrain_val_loss" + run:                                  3.4,
		"dtrain_learning_rate" + run:                             9e-4,
		"dtrain_grad_norm" + run:                                 0.5,
		"dtrain_tokens_trained_total" + run:                      16384,
		"dtrain_tokens_per_second" + run:                         16384,
		"dtrain_data_wait_seconds_total" + run:                   0.5,
		"dtrain_step_seconds_count" + run:                        2,
		"dtrain_step_seconds_sum" + run:                          2.5,
		`dtrain_step_seconds_bucket{run="exp-1",le="0.64"}`:      1,
		`dtrain_step_seconds_bucket{run="exp-1",le="2.56"}`:      2,
		"dtrain_checkpoints_written_total" + run:                 2,
		"dtrain_checkpoint_seconds_count" + run:                  2,
		"dtrain_checkpoint_seconds_sum" + run:                    30.3,
		`dtrain_checkpoint_seconds_bucket{run="exp-1",le="0.4"}`: 1,
	}
	// Exact: sums and quotients of these durations in float64 round the same
	// on any CPU (30 + 0.3 to the literal 30.3), and print and parse back exactly.
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", name, g, ok, v)
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s missing: want the Go and process collectors", name)
		}
	}
	build := 0
	for name, v := range got {
		if strings.HasPrefix(name, "dtrain_build_info{") && strings.Contains(name, `goversion="go`) && v == 1 {
			build++
		}
	}
	if build != 1 {
		t.Errorf("%d dtrain_build_info samples of 1 with the Go version; want 1", build)
	}

	if body := get(t, "http://"+addr+"/healthz"); body != "ok\n" {
		t.Errorf("/healthz = %q", body)
	}

	// The server goes away with its context.
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still listening 5 s after the context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := NewTraining("r").Registry()
	busy, err := Serve(ctx, "127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{busy, "127.0.0.1:99999", "not an address", "256.0.0.1:80"} {
		if got, err := Serve(ctx, addr, reg, nil); err == nil {
			t.Errorf("Serve(%q) = %s, nil; want an error", addr, got)
		}
	}
	if _, err := Serve(ctx, "127.0.0.1:0", nil, nil); err == nil {
		t.Error("Serve with a nil registry succeeded")
	}
}

// TestNilTrainingRecordsNothing: code reports unconditionally when metrics
// are off.
func TestNilTrainingRecordsNothing(t *testing.T) {
	var tr *Training
	tr.ObserveStep(StepStats{Step: 1, Tokens: 5, Took: time.Second})
	tr.SetStep(3)
	tr.ObserveEval(1)
	tr.ObserveCheckpoint(time.Second)
	if tr.Registry() != nil {
		t.Error("nil Training has a registry")
	}
}

// TestBadObservationsDoNotPanic: counters only go up, and bad numbers
// from a buggy caller must not take the trainer down.
func TestBadObservationsDoNotPanic(t *testing.T) {
	tr := NewTraining("bad\xffutf8")
	tr.ObserveStep(StepStats{Step: -1, Tokens: -5, Took: -time.Second, DataWait: -time.Second})
	tr.ObserveCheckpoint(-time.Second)
	if _, err := tr.Registry().Gather(); err != nil {
		t.Fatalf("Gather: %v", err)
	}
}
