package dash

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// rec decodes one metrics.jsonl line, as a log read back gives it.
func rec(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// validatorLog is a validator's log of two epochs: a round, a probe, a
// cheat caught, weights and sightings.
var validatorLog = []string{
	`{"time":"2026-12-06T10:00:00Z","event":"start","peer":"V1"}`,
	`{"time":"2026-12-06T10:00:05Z","event":"round","epoch":1,"members":3,"contributors":2,"took_s":0.5,"expected":["MinerA","MinerB"],"delivered":["MinerA"]}`,
	`{"time":"2026-12-06T10:00:06Z","event":"probe","epoch":1,"miner":"MinerA","failed":false,"rtt_ms":1.5,"up_mbps":180,"down_mbps":190}`,
	`{"time":"2026-12-06T10:00:07Z","event":"verdict","epoch":1,"miner":"MinerB","verdict":"cheat","reason":"zero update"}`,
	`{"time":"2026-12-06T10:00:10Z","event":"epoch","epoch":1,"samples":64,"loss":5.5,"weights":[{"miner":"MinerA","weight":1,"score":0.9,"active":true,"gate":1,"work":1,"network":0.8,"delivery":1},{"miner":"MinerB","weight":0,"score":0,"active":true,"gate":0,"work":0,"network":0}],"seen":[{"miner":"MinerA","epoch":2,"seen":"2026-12-06T10:00:09Z","loss":5.4},{"miner":"MinerB","epoch":2,"seen":"2026-12-06T10:00:09Z"}],"validators":2}`,
	`{"time":"2026-12-06T10:00:20Z","event":"epoch","epoch":2,"samples":64,"loss":5.1,"weights":[],"seen":[{"miner":"MinerA","epoch":3,"seen":"2026-12-06T10:00:19Z","loss":5.0},{"miner":"MinerB","epoch":2,"seen":"2026-12-06T10:00:09Z"}]}`,
}

func newTestBoard(t *testing.T) *Board {
	b := NewBoard("validator")
	b.SetInfo("demo", "V1", 1000, 64)
	for _, l := range validatorLog {
		b.Apply(rec(t, l))
	}
	b.now = func() time.Time { return time.Date(2026, 12, 6, 10, 0, 45, 0, time.UTC) }
	return b
}

// A validator's log folds into the run's summary, one point per closed
// epoch, one row per miner (stale when unheard for long), its rounds and
// the cheat caught.
func TestBoardFoldsValidatorLog(t *testing.T) {
	b := newTestBoard(t)
	s := b.Summary()
	if s.Epoch != 2 || s.Tokens != 128*64 || s.Miners != 2 || s.Live != 1 || s.Caught != 1 || s.TokensPerS != 64*64/10.0 || s.Validators != 2 {
		t.Errorf("summary %+v", s)
	}
	ps := b.Points()
	if len(ps) != 2 || *ps[0].Loss != 5.5 || *ps[1].Loss != 5.1 || ps[1].ValLoss != nil {
		t.Errorf("points %+v", ps)
	}
	ms := b.Miners()
	a, c := ms[0], ms[1]
	if a.Peer != "MinerA" || a.Stale || a.Epoch != 3 || a.Joined != 1 || a.Failed != 0 || *a.UpMbps != 180 || a.Weight != 1 {
		t.Errorf("miner A %+v", a)
	}
	if c.Peer != "MinerB" || !c.Stale || c.Failed != 1 || c.Verdict != "cheat" || c.Reason != "zero update" {
		t.Errorf("miner B %+v", c)
	}
	if n := b.Notes(); len(n) != 4 || n[0].Kind != "caught" || n[1].Kind != "join" || n[3].Kind != "start" {
		t.Errorf("notes %+v", n)
	}
	// A validator's held-out loss of an epoch comes after the epoch
	// closed, or before (kept until it does).
	b.Apply(rec(t, `{"time":"2026-12-06T10:00:21Z","event":"eval","epoch":1,"val_loss":5.3}`))
	b.Apply(rec(t, `{"time":"2026-12-06T10:00:22Z","event":"eval","epoch":3,"val_loss":4.7}`))
	b.Apply(rec(t, `{"time":"2026-12-06T10:00:30Z","event":"epoch","epoch":3,"samples":64,"loss":4.8,"weights":[],"seen":[]}`))
	if ps := b.Points(); ps[0].ValLoss == nil || *ps[0].ValLoss != 5.3 || ps[1].ValLoss != nil || ps[2].ValLoss == nil || *ps[2].ValLoss != 4.7 {
		t.Errorf("held-out losses on the points: %+v", ps)
	}
	// Garbage in a log is skipped, not a crash.
	for _, l := range []string{`{"event":"epoch","epoch":-1,"weights":7,"seen":[1,"x",{"miner":5}]}`, `{"event":"eval","epoch":"x"}`, `{"event":"round","members":1e300}`, `{"event":"probe"}`, `{}`} {
		b.Apply(rec(t, l))
	}
}

// The page, its parts and the API serve the board; a peer id is escaped
// wherever it appears; the stream announces a change as it happens.
func TestHandler(t *testing.T) {
	b := newTestBoard(t)
	b.Apply(rec(t, `{"time":"2026-12-06T10:00:21Z","event":"verdict","epoch":2,"miner":"<script>alert(1)</script>","verdict":"cheat"}`))
	srv := httptest.NewServer(Handler(b))
	defer srv.Close()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s %s", path, resp.Status, body)
		}
		return string(body)
	}
	page := get("/")
	for _, want := range []string{`<circle class="loss"`, `data-peer="MinerA"`, "stale", "zero update", `src="assets/dash.js"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>alert") {
		t.Error("a peer id reached the page unescaped")
	}
	if n := strings.Count(page, `<circle class="loss"`); n != 2 {
		t.Errorf("%d loss points drawn, want 2", n)
	}
	var parts map[string]string
	if err := json.Unmarshal([]byte(get("/parts")), &parts); err != nil || len(parts) != len(sections) {
		t.Errorf("parts: %v %d", err, len(parts))
	}
	var miners []MinerRow
	if err := json.Unmarshal([]byte(get("/api/miners")), &miners); err != nil || len(miners) != 3 {
		t.Errorf("api/miners: %v %d", err, len(miners))
	}
	for _, p := range []string{"/api/run", "/api/epochs", "/api/rounds", "/api/events", "/assets/dash.css"} {
		get(p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	next := func() string {
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				return sc.Text()
			}
		}
		t.Fatal("stream ended")
		return ""
	}
	first := next()
	b.Apply(rec(t, `{"time":"2026-12-06T10:00:30Z","event":"epoch","epoch":3,"samples":64,"loss":4.9,"weights":[],"seen":[]}`))
	if second := next(); second == first {
		t.Errorf("the stream sent %q again after a change", second)
	}
}

// A trainer's log plots by step: training loss at each step, held-out
// loss where it evaluated.
func TestBoardFoldsTrainLog(t *testing.T) {
	b := NewBoard("train")
	for _, l := range []string{
		`{"time":"2026-12-06T10:00:00Z","event":"start","run_id":"local"}`,
		`{"time":"2026-12-06T10:00:01Z","event":"step","step":1,"loss":6.0,"tokens":4096}`,
		`{"time":"2026-12-06T10:00:02Z","event":"step","step":2,"loss":5.5,"tokens":8192}`,
		`{"time":"2026-12-06T10:00:02Z","event":"eval","step":2,"tokens":8192,"val_loss":5.8}`,
	} {
		b.Apply(rec(t, l))
	}
	ps := b.Points()
	if len(ps) != 2 || *ps[1].Loss != 5.5 || ps[1].ValLoss == nil || *ps[1].ValLoss != 5.8 || b.Summary().Tokens != 8192 || b.Summary().Epoch != 2 {
		t.Errorf("train points %+v, summary %+v", ps, b.Summary())
	}
}

// A miner's status: its own epoch, link and last round from its log, its
// peers and the swarm's epoch from its live view, its state loads.
func TestMinerStatus(t *testing.T) {
	b := NewBoard("miner")
	for _, l := range []string{
		`{"time":"2026-12-06T10:00:00Z","event":"start","peer":"M1","params":1000}`,
		`{"time":"2026-12-06T10:00:02Z","event":"load","epoch":3,"source":"peers"}`,
		`{"time":"2026-12-06T10:00:05Z","event":"round","epoch":3,"members":2,"contributors":2,"took_s":0.25,"bytes_sent":100,"bytes_received":50}`,
		`{"time":"2026-12-06T10:00:06Z","event":"epoch","epoch":3,"loss":5.5,"tokens":4000,"up_mbps":180,"down_mbps":190}`,
	} {
		b.Apply(rec(t, l))
	}
	b.SetLive(func() Live { return Live{Peers: 2, SwarmEpoch: 4, Epoch: 4, Phase: "training"} })
	srv := httptest.NewServer(Handler(b))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.Role != "miner" || s.Peer != "M1" || s.Epoch != 3 || s.Tokens != 4000 || s.Live == nil || *s.Live != (Live{Peers: 2, SwarmEpoch: 4, Epoch: 4, Phase: "training"}) {
		t.Errorf("status %+v", s)
	}
	if s.UpMbps == nil || *s.UpMbps != 180 || s.DownMbps == nil || *s.DownMbps != 190 {
		t.Errorf("link %v/%v, want 180/190", s.UpMbps, s.DownMbps)
	}
	if len(s.Rounds) != 1 || s.Rounds[0].Bytes != 150 || len(s.Loads) != 1 || !strings.Contains(s.Loads[0].Text, "epoch 3 from peers") {
		t.Errorf("rounds %+v, loads %+v", s.Rounds, s.Loads)
	}
	if s.LastEvent == nil || s.LastEvent.Kind != "load" {
		t.Errorf("last event %+v, want the load (rounds and epochs make no note)", s.LastEvent)
	}
}
