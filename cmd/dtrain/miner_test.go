package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/dash"
	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/metrics"
	"github.com/dtrain-dev/dtrain/node/miner"
	"github.com/dtrain-dev/dtrain/node/wandb/wandbtest"
)

// tinyMinerFiles writes a token shard and a tiny miner config that trains
// it, and returns the config's path.
func tinyMinerFiles(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	toks := make([]int32, 20000)
	for i := range toks {
		toks[i] = int32((i*7)%97 + (i/13)%5)
	}
	must(t, data.WriteShard(filepath.Join(dir, "train_000000.bin"), toks[:18000]))
	must(t, data.WriteShard(filepath.Join(dir, "val_000000.bin"), toks[18000:]))
	cfg := filepath.Join(dir, "miner.toml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`run_id = "metrics-test"
out_dir = %q
[model]
n_layer = 1
n_head = 2
n_embd = 16
n_positions = 16
vocab_size = 50257
[data]
train = %q
seq_len = 8
[train]
max_steps = 100000
batch_tokens = 32
micro_batch = 4
eval_tokens = 64
[net]
listen = ["/ip4/127.0.0.1/udp/0/quic-v1"]
[swarm]
inner_steps = 2
match_seconds = 1
round_seconds = 5
%s`, filepath.Join(dir, "out"), dir, extra)), 0o644))
	return cfg
}

// TestMinerRefusesTrainerKeys is a new user's first try: a miner config
// with a key only the trainer reads. The miner does not start; the error
// names the key, its line, and what to do.
func TestMinerRefusesTrainerKeys(t *testing.T) {
	cfg := tinyMinerFiles(t, "")
	text, err := os.ReadFile(cfg)
	must(t, err)
	must(t, os.WriteFile(cfg, []byte(strings.Replace(string(text), "eval_tokens = 64\n", "eval_tokens = 64\neval_every = 5\n", 1)), 0o644))
	want := "miner.toml:17: train.eval_every: not read by a miner: it evaluates held-out loss every swarm.eval_every epochs; set swarm.eval_every instead"
	for _, args := range [][]string{{"miner", "--config", cfg}, {"config", "check", "--role", "miner", "--config", cfg}} {
		out, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error()+out, want) {
			t.Errorf("dtrain %s: %v\n%s\nwant %q", strings.Join(args, " "), err, out, want)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "out")); err == nil {
		t.Error("the refused miner made its out dir")
	}
}

// TestMinerMetrics runs a miner alone with --metrics-addr and
// --max-minutes: while it runs, its dtrain_miner_* metrics are served;
// it mines past train.max_steps, stops by itself after the epoch in which
// the time passes, and its metrics.jsonl holds its start, its epochs and
// its stop; dtrain status reads its /api/status.
func TestMinerMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a miner for 20 s")
	}
	cfg := tinyMinerFiles(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	ln.Close()
	// The miner logs its epochs to W&B too (a local stand-in).
	wb := wandbtest.Env(t)
	done := make(chan error, 1)
	begun := time.Now()
	go func() {
		// max_steps is the schedule's length only: the miner mines past it.
		out, err := run(t, "--log-level", "warn", "--threads", "1", "miner", "--config", cfg, "--metrics-addr", addr, "--max-minutes", "0.3",
			"--set", "train.max_steps=20")
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, out)
		}
		done <- err
	}()
	// Alone, the miner drops its epochs until it has heard no peer for a
	// report expiry (10 s), then applies its own updates.
	var got map[string]float64
	deadline := time.Now().Add(time.Minute)
	for got[`dtrain_miner_epochs_total{outcome="alone",run="metrics-test"}`] < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no epoch applied alone in a minute; last scrape: %v", got)
		}
		select {
		case err := <-done:
			t.Fatalf("the miner stopped before an epoch was scraped: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		got = scrape(t, "http://"+addr+"/metrics")
	}
	for _, name := range []string{"dtrain_miner_epoch", "dtrain_miner_train_loss", "dtrain_miner_val_loss", "dtrain_miner_tokens_per_second",
		"dtrain_miner_tokens_trained_total", "dtrain_miner_peers", "dtrain_miner_round_seconds_count", "dtrain_miner_rounds_failed_total",
		"dtrain_miner_bytes_sent_total", "dtrain_miner_bytes_received_total"} {
		if _, ok := got[name+`{run="metrics-test"}`]; !ok {
			t.Errorf("%s is not served", name)
		}
	}
	libp2p := 0
	for name := range got {
		if strings.HasPrefix(name, "libp2p_") {
			libp2p++
		}
	}
	if libp2p == 0 {
		t.Error("no libp2p_* metric is served: go-libp2p's own metrics are off")
	}
	for _, name := range []string{`dtrain_miner_epochs_total{outcome="dropped",run="metrics-test"}`,
		`dtrain_miner_state_loads_total{result="ok",run="metrics-test"}`} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s is not served", name)
		}
	}
	if got[`dtrain_miner_epoch{run="metrics-test"}`] < 1 || got[`dtrain_miner_tokens_trained_total{run="metrics-test"}`] <= 0 ||
		got[`dtrain_miner_peers{run="metrics-test"}`] != 0 {
		t.Errorf("after an epoch applied alone: %v", got)
	}
	// dtrain status reads the same miner's /api/status.
	out, err := run(t, "status", "--addr", addr, "--json")
	must(t, err)
	var st dash.Status
	must(t, json.Unmarshal([]byte(out), &st))
	if st.Role != "miner" || st.Run != "metrics-test" || st.Live == nil || st.Live.Epoch < 1 || st.Live.Peers != 0 || st.UptimeS <= 0 {
		t.Errorf("dtrain status --json: %s", out)
	}
	out, err = run(t, "status", "--addr", "http://"+addr)
	must(t, err)
	t.Logf("dtrain status:\n%s", out)
	if !strings.Contains(out, "miner ") || !strings.Contains(out, `run "metrics-test"`) || !strings.Contains(out, "0 peers connected") {
		t.Errorf("dtrain status:\n%s", out)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the miner did not stop at --max-minutes 0.3")
	}
	took := time.Since(begun)
	evs, err := metrics.ReadJSONL(filepath.Join(filepath.Dir(cfg), "out", "metrics.jsonl"))
	must(t, err)
	kinds := map[string]int{}
	for _, e := range evs {
		kinds[e["event"].(string)]++
	}
	last := evs[len(evs)-1]
	t.Logf("stopped after %s: %v; last event %v", took.Round(time.Second), kinds, last)
	if step, _ := last["step"].(float64); step <= 20 {
		t.Errorf("stopped at step %v: a miner mines past train.max_steps (20) until stopped", last["step"])
	}
	if evs[0]["event"] != "start" || last["event"] != "stop" || last["reason"] != "max_minutes" || kinds["epoch"] < 2 {
		t.Errorf("metrics.jsonl: %v events, first %v, last %v", kinds, evs[0], last)
	}
	peer, _ := evs[0]["peer"].(string)
	if r := wb.Run("tester/dtrain/" + wandbName("metrics-test", "miner", peer)); r == nil || !r.Complete || len(r.History) != kinds["epoch"] {
		t.Errorf("W&B run of the miner: %+v, want a row per epoch (%d)", r, kinds["epoch"])
	}
	if took < 18*time.Second {
		t.Errorf("stopped after %s, before --max-minutes 0.3", took)
	}
}

// scrape GETs a Prometheus text page and returns its samples by
// "name{labels}" (nil while nothing listens).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// TestMinerObserverEvents: every kind of miner event goes to
// metrics.jsonl through the observer, and the swarm's reader gets its
// facts back, durations and all.
func TestMinerObserverEvents(t *testing.T) {
	cfg := config.DefaultMiner()
	cfg.OutDir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o, err := newMinerObserver(ctx, cfg)
	must(t, err)
	tail := newEventTail(filepath.Join(cfg.OutDir, "metrics.jsonl"))
	events := []miner.Event{
		miner.StartEvent{Peer: "12D3KooWx", Mode: "diloco", Params: 1000, Epoch: 4, Step: 40, Resumed: true, Peers: 2},
		miner.RoundEvent{Epoch: 4, Stage: 1, Members: 3, Contributors: 3, Took: 1500 * time.Millisecond, BytesSent: 100, BytesReceived: 200},
		miner.EpochEvent{Epoch: 4, Mode: "diloco", Loss: 3.5, ValLoss: 3.25, Samples: 8, Tokens: 512, TokensPerSec: 64, Group: 3,
			Contributors: 3, SyncTime: 2 * time.Second, BytesSent: 100, BytesReceived: 200, TrainTime: time.Second, Peers: 2,
			ParamHash: "aa", StartHash: "bb"},
		miner.LoadEvent{Epoch: 6, FromEpoch: 5, Source: "peers", Bytes: 4000, Took: 500 * time.Millisecond, Donors: 2, BytesPerSec: 8000, ParamHash: "cc"},
		miner.ProbeEvent{Peers: 3, Bytes: 1 << 20, UpMbps: 190.5, DownMbps: 180.25},
		miner.AnnounceEvent{Role: "client", Setting: "auto", UpMbps: 190.5, DownMbps: 180.25},
		miner.ErrorEvent{Epoch: 6, Op: "hub publish", Err: "401"},
		miner.StopEvent{Epoch: 6, Step: 60, Reason: "error", Err: "checkpoint: disk full"},
	}
	for _, ev := range events {
		o.event(ev)
	}
	o.close()
	lines, err := tail.read()
	must(t, err)
	if len(lines) != len(events) {
		t.Fatalf("read %d lines, want %d:\n%s", len(lines), len(events), strings.Join(lines, "\n"))
	}
	got := make([]minerEvent, len(lines))
	for i, l := range lines {
		var ok bool
		if got[i], ok = parseMinerEvent(l); !ok || got[i].Event != events[i].Kind() {
			t.Fatalf("line %d %q is not a %s event", i, l, events[i].Kind())
		}
	}
	if s := got[0]; s.Peer != "12D3KooWx" || !s.Resumed || *s.Epoch != 4 {
		t.Errorf("start: %+v", s)
	}
	if e := got[2]; *e.Epoch != 4 || e.Loss != 3.5 || e.ValLoss != 3.25 || e.SyncS != 2 || e.BytesSent != 100 ||
		e.Contributors != 3 || e.ParamHash != "aa" || e.StartHash != "bb" || *e.Tokens != 512 {
		t.Errorf("epoch: %+v", e)
	}
	if l := got[3]; *l.Epoch != 6 || l.FromEpoch != 5 || l.Bytes != 4000 || l.TookS != 0.5 || l.Donors != 2 || l.ParamHash != "cc" || l.Source != "peers" {
		t.Errorf("load: %+v", l)
	}
	if p := got[4]; p.Peers != 3 || p.Bytes != 1<<20 || p.UpMbps != 190.5 || p.DownMbps != 180.25 {
		t.Errorf("probe: %+v", p)
	}
	if a := got[5]; a.Role != "client" || a.UpMbps != 190.5 || a.DownMbps != 180.25 {
		t.Errorf("announce: %+v", a)
	}
	if e := got[6]; e.Op != "hub publish" || e.Error != "401" {
		t.Errorf("error: %+v", e)
	}
	if s := got[7]; s.Reason != "error" || s.Error != "checkpoint: disk full" {
		t.Errorf("stop: %+v", s)
	}
}

// TestEventTail: the tail reads whole lines only, starts after what the
// file held before the swarm, and goes on after a restarted miner cut off
// the line its killed predecessor tore.
func TestEventTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.jsonl")
	must(t, os.WriteFile(path, []byte(`{"event":"old"}`+"\n"), 0o644))
	tail := newEventTail(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	f.WriteString(`{"event":"a"}` + "\n" + `{"event":"b"}` + "\n" + `{"event":"c`)
	f.Close()
	if lines, err := tail.read(); err != nil || strings.Join(lines, "|") != `{"event":"a"}|{"event":"b"}` {
		t.Fatalf("read %q, %v", lines, err)
	}
	j, err := metrics.OpenJSONL(path) // the restarted miner: cuts the torn line off
	must(t, err)
	must(t, j.Write("d", nil))
	must(t, j.Close())
	lines, err := tail.read()
	if err != nil || len(lines) != 1 {
		t.Fatalf("after the restart read %q, %v", lines, err)
	}
	if e, ok := parseMinerEvent(lines[0]); !ok || e.Event != "d" {
		t.Errorf("after the restart read %q", lines[0])
	}
	if lines, err := tail.read(); err != nil || len(lines) != 0 {
		t.Errorf("nothing new, read %q, %v", lines, err)
	}
}
