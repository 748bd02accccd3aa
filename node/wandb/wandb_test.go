package wandb

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/wandb/wandbtest"
)

func start(t *testing.T, srv *wandbtest.Server, name string, queue int) *Run {
	t.Helper()
	r, err := Start(Config{BaseURL: srv.URL, BaseURLTrusted: true, APIKey: "k", Project: "proj", Name: name, Group: "run1",
		JobType: "validator", Config: map[string]any{"lr": 0.1}, Queue: queue, Flush: 20 * time.Millisecond, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A run's rows, config and summary reach W&B in order, and a restarted
// run with the same name goes on after its history.
func TestRunStreamsAndResumes(t *testing.T) {
	srv := wandbtest.New("k")
	defer srv.Close()
	r := start(t, srv, "dtrain-run1-validator", 0)
	for e := range 5 {
		r.Log(map[string]any{"epoch": e, "loss": 5 - float64(e), "nan": math.NaN()})
	}
	r.Summary(map[string]any{"epoch": 4, "loss": 1.0})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	run := srv.Run("tester/proj/dtrain-run1-validator")
	if run == nil || len(run.History) != 5 || !run.Complete || run.Group != "run1" || run.JobType != "validator" {
		t.Fatalf("run on the server: %+v", run)
	}
	if v := run.Config["lr"].(map[string]any)["value"]; v != 0.1 {
		t.Errorf("config lr = %v", v)
	}
	if run.Summary["loss"] != 1.0 {
		t.Errorf("summary %v", run.Summary)
	}
	for i, row := range run.History {
		if row["_step"] != float64(i) || row["epoch"] != float64(i) || row["_timestamp"] == nil {
			t.Errorf("row %d: %v", i, row)
		}
		if _, ok := row["nan"]; ok {
			t.Errorf("row %d kept a NaN: %v", i, row)
		}
	}
	again := start(t, srv, "dtrain-run1-validator", 0)
	again.Log(map[string]any{"epoch": 5})
	if err := again.Close(ctx); err != nil {
		t.Fatal(err)
	}
	run = srv.Run("tester/proj/dtrain-run1-validator")
	if len(run.History) != 6 || run.History[5]["_step"] != float64(5) || run.Upserts != 2 || srv.BadOffsets() != 0 {
		t.Errorf("after a restart: %d rows, last %v, %d upserts, %d bad offsets", len(run.History), run.History[len(run.History)-1], run.Upserts, srv.BadOffsets())
	}
}

// W&B answering 500 costs retries, not rows; W&B hanging never blocks
// Log, drops the oldest rows past the queue (counted), and Close gives up
// at its deadline.
func TestRunSurvivesFailingAndHangingServers(t *testing.T) {
	srv := wandbtest.New("k")
	defer srv.Close()
	srv.Fail(3)
	r := start(t, srv, "flaky", 0)
	for e := range 10 {
		r.Log(map[string]any{"epoch": e})
	}
	waitFor(t, "rows through after the 500s", func() bool { return r.Sent() == 10 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if run := srv.Run("tester/proj/flaky"); len(run.History) != 10 || srv.BadOffsets() != 0 {
		t.Errorf("after 500s: %d rows, %d bad offsets", len(run.History), srv.BadOffsets())
	}

	srv.Hang(true)
	h := start(t, srv, "hung", 8)
	began := time.Now()
	for e := range 100 {
		h.Log(map[string]any{"epoch": e})
	}
	if took := time.Since(began); took > 100*time.Millisecond {
		t.Errorf("100 rows took %v to log against a hanging server", took)
	}
	if h.Dropped() != 92 {
		t.Errorf("dropped %d rows past a queue of 8, want 92", h.Dropped())
	}
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	began = time.Now()
	err := h.Close(short)
	if err == nil || !strings.Contains(err.Error(), "not sent") || time.Since(began) > time.Second {
		t.Errorf("Close against a hanging server: %v after %v", err, time.Since(began))
	}
	srv.Hang(false)
}

// The key goes over https, or http to loopback, and to another host than
// W&B's only when the environment names it.
func TestKeyStaysSafe(t *testing.T) {
	for _, tc := range []struct {
		base    string
		trusted bool
		ok      bool
	}{
		{"", false, true},
		{"https://api.wandb.ai", false, true},
		{"http://api.wandb.ai", true, false},
		{"https://wandb.example.com", false, false},
		{"https://wandb.example.com", true, true},
		{"http://127.0.0.1:8080", true, true},
		{"http://10.0.0.1:8080", true, false},
		{"ftp://127.0.0.1", true, false},
	} {
		_, err := Start(Config{BaseURL: tc.base, BaseURLTrusted: tc.trusted, APIKey: "k", Project: "p", Name: "n"})
		if (err == nil) != tc.ok {
			t.Errorf("base %q trusted %v: %v", tc.base, tc.trusted, err)
		}
	}
	if _, err := Start(Config{APIKey: "k", Project: "p", Name: "a/b"}); err == nil {
		t.Error("a run name with a slash was taken")
	}
	if _, err := Start(Config{Project: "p", Name: "n"}); err == nil {
		t.Error("no key was taken")
	}
}
