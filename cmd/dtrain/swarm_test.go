package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/miner"
)

// epochJSON is a miner's epoch event as its metrics.jsonl holds it.
func epochJSON(who, epoch int, loss, val float64, contributors int, alone string, syncMS, bytes, tokens int64, hash string) string {
	return eventLine(epochEvent(who, epoch, loss, val, contributors, alone, syncMS, bytes, tokens, hash))
}

func epochEvent(who, epoch int, loss, val float64, contributors int, alone string, syncMS, bytes, tokens int64, hash string) miner.EpochEvent {
	return miner.EpochEvent{Epoch: uint64(epoch), Peer: fmt.Sprintf("12D3KooWpeer%d", who), Mode: "diloco", Loss: loss, ValLoss: val,
		Samples: 4, Tokens: tokens, Group: contributors, Contributors: contributors, Alone: alone,
		SyncTime: time.Duration(syncMS) * time.Millisecond, BytesSent: bytes, BytesReceived: bytes, TrainTime: 900 * time.Millisecond,
		ParamHash: hash, Peers: 2}
}

// eventLine is ev as dtrain miner writes it to metrics.jsonl.
func eventLine(ev miner.Event) string {
	b, err := json.Marshal(ev.Fields())
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf(`{"time":"2026-01-01T00:00:00Z","event":%q,%s`, ev.Kind(), b[1:])
}

// TestSwarmReportEpochLines feeds two miners' events and checks that an
// epoch line waits for both, averages what it should, and that churn and
// the summary read right.
func TestSwarmReportEpochLines(t *testing.T) {
	var out strings.Builder
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	r := newSwarmReport(&out, false, t0, 1000)
	r.started(1, 101, false)
	r.started(2, 102, false)
	for i := 1; i <= 2; i++ {
		r.line(at(1), i, eventLine(miner.StartEvent{Peer: fmt.Sprintf("12D3KooWpeer%d", i), Mode: "diloco", Params: 100}))
	}

	r.line(at(5), 1, `not json: a panic trace line`)
	r.line(at(5), 1, eventLine(miner.ProbeEvent{Peers: 1, Bytes: 2097152, UpMbps: 190.4, DownMbps: 187.9}))
	r.line(at(5), 1, eventLine(miner.AnnounceEvent{Role: "full", Setting: "auto", UpMbps: 190.4, DownMbps: 187.9}))
	r.line(at(5), 2, eventLine(miner.AnnounceEvent{Role: "client", Setting: "auto"}))
	r.line(at(5), 1, epochJSON(1, 0, 10, 8, 2, "", 300, 1_000_000, 1000, "aa"))
	if strings.Contains(out.String(), "train loss") {
		t.Fatalf("epoch 0 printed before miner 2 reported it:\n%s", out.String())
	}
	r.line(at(6), 2, epochJSON(2, 0, 9, 8, 2, "", 500, 2_000_000, 1000, "aa"))
	r.line(at(11), 1, epochJSON(1, 1, 7, 6, 2, "", 200, 1_000_000, 2000, "bb"))
	r.line(at(12), 2, epochJSON(2, 1, 6, 6, 1, "no group", 0, 0, 2000, "cc"))
	r.line(at(13), 2, eventLine(miner.ErrorEvent{Epoch: 2, Op: "hub publish", Err: "403 Forbidden"}))
	r.line(at(13), 2, eventLine(miner.StartEvent{Peer: "12D3KooWpeer2", Mode: "diloco", Epoch: 2, Step: 20, Resumed: true}))

	// Miner 2 dies; epoch 2 no longer waits for it.
	r.exited(at(14), 2, errors.New("signal: killed"), true)
	r.line(at(16), 1, epochJSON(1, 2, 5, 5, 1, "no group", 0, 0, 3000, "dd"))
	// A late joiner loads the state and reports epoch 3 with miner 1.
	r.started(3, 103, true)
	r.line(at(19), 3, eventLine(miner.StartEvent{Peer: "12D3KooWpeer3", Mode: "diloco", Params: 100}))
	r.line(at(20), 3, eventLine(miner.LoadEvent{Epoch: 3, Source: "peers", Bytes: 27_000_000, Took: 1500 * time.Millisecond, Donors: 1,
		BytesPerSec: 18e6, ParamHash: "ee"}))
	// Its epoch events carry the rates it announced, newer than its last
	// announce event (one on a change of 10% or more).
	ev := epochEvent(1, 3, 4.5, 4.75, 2, "", 100, 1_000_000, 4000, "ee")
	ev.UpMbps, ev.DownMbps = 180.2, 178.9
	r.line(at(22), 1, eventLine(ev))
	r.line(at(23), 3, epochJSON(3, 3, 4.5, 4.75, 2, "", 100, 1_000_000, 500, "ee"))
	// Miner 1 owes epoch 4; after the wait, epoch 4 prints with miner 3 alone.
	r.line(at(30), 3, epochJSON(3, 4, 4, 4.5, 1, "timeout", 0, 0, 1500, "ff"))
	r.flush(at(40), false)
	if strings.Contains(out.String(), "     4 ") {
		t.Fatalf("epoch 4 printed before the wait ran out")
	}
	r.flush(at(51), false)
	r.summary(at(60), "time is up")

	// The figures are means of dyadic fractions (9.5, 4.75): exact in
	// float64, so their printed form is too.
	got := out.String()
	t.Log("\n" + got)
	for _, want := range []string{
		"  0:06     0     9.5000    8.0000     2000     0.50 s   2.9 MiB    2/2  agree\n",
		"  0:12     1     6.5000    6.0000     4000     0.20 s   977 KiB    2/2  2 versions (alone: miner 2)\n",
		"  0:13  * miner 2: hub publish: 403 Forbidden\n",
		"  0:13  * miner 2 resumed from its checkpoint at epoch 2\n",
		"  0:16     2     5.0000    5.0000     5000     0.00 s       0 B    1/1  agree (alone: miner 1)\n",
		"  0:20  * miner 3 loaded the state of epoch 3 from 1 peer(s): 26 MiB in 1.5 s (18 MB/s)\n",
		"  0:23     3     4.5000    4.7500     7000     0.10 s   1.9 MiB    2/2  agree\n",
		"  0:51     4     4.0000    4.5000     8000     0.00 s       0 B    1/1  agree (alone: miner 3)\n",
		"5 swarm epochs in 1m0s; 8000 tokens trained",
		"held-out loss: 8.0000 at epoch 0 -> 4.5000 at epoch 4",
		"  0:05  * miner 1 probed its link with 1 peer(s): up 190 Mbit/s, down 188 Mbit/s\n",
		"miner  peer                 epochs   tokens      sent  held-out  up/down Mbit/s  notes\n",
		"    1  12D3KooWpeer1             4     4000   2.9 MiB    4.7500         180/179  \n",
		"    2  12D3KooWpeer2             2     2000   1.9 MiB    6.0000               -  client (reduces no span)\n",
		"    3  12D3KooWpeer3             2     2000   977 KiB    4.5000               -  joined late, loaded state 1×\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Count(got, "epoch train loss") != 1 {
		t.Errorf("want the column header once")
	}
}

// TestSwarmReportDropped: a miner that dropped its update holds the
// epoch's start state and goes on from the swarm's (node/epoch): its line
// is no second version of the epoch, and the epoch line says it dropped.
func TestSwarmReportDropped(t *testing.T) {
	var out strings.Builder
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newSwarmReport(&out, false, t0, 1000)
	for i := 1; i <= 3; i++ {
		r.started(i, 100+i, false)
	}
	r.line(t0.Add(5*time.Second), 1, epochJSON(1, 0, 10, 8, 2, "", 300, 1000, 1000, "aa"))
	r.line(t0.Add(5*time.Second), 2, epochJSON(2, 0, 10, 8, 2, "", 300, 1000, 1000, "aa"))
	r.line(t0.Add(6*time.Second), 3, eventLine(miner.EpochEvent{Epoch: 0, Loss: 10, Dropped: true,
		Alone: "the epoch was averaged without this group", SyncTime: 300 * time.Millisecond, Tokens: 1000, ParamHash: "00", StartHash: "00"}))
	r.summary(t0.Add(10*time.Second), "time is up")
	got := out.String()
	t.Log("\n" + got)
	if want := "2/3  agree (dropped: miner 3)\n"; !strings.Contains(got, want) {
		t.Errorf("output lacks %q", want)
	}
}

// TestSwarmReportJSON checks --json: every line an object with an event.
func TestSwarmReportJSON(t *testing.T) {
	var out strings.Builder
	t0 := time.Now()
	r := newSwarmReport(&out, true, t0, 1000)
	r.started(1, 1, false)
	r.line(t0, 1, epochJSON(1, 0, 10, 8, 1, "", 300, 1000, 1000, "aa"))
	r.exited(t0, 1, errors.New("exit status 1"), false)
	r.summary(t0, "error")
	var events []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		events = append(events, fmt.Sprint(obj["event"]))
	}
	if got := strings.Join(events, ","); got != "epoch,exited,summary" {
		t.Errorf("events %s, want epoch,exited,summary", got)
	}
}

func TestSwarmFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--miners", "1"}, "--miners must be 2 to 8"},
		{[]string{"--miners", "9"}, "--miners must be 2 to 8"},
		{[]string{"--mode", "sgd"}, "--mode must be diloco or gradients"},
		{[]string{"--minutes", "0"}, "--minutes must be > 0"},
		{[]string{"--minutes", "-1"}, "--minutes must be > 0"},
		{[]string{"--late-after", "1.5"}, "fraction of --minutes must be in (0, 1)"},
		{[]string{"--kill-after", "soon"}, "want a fraction of --minutes (0.5) or a duration"},
		{[]string{"--minutes", "1", "--kill-after", "2m"}, "must fall inside the run"},
		{[]string{"extra"}, "swarm takes no arguments"},
		{[]string{"--config", "/nonexistent/miner.toml"}, "no such file"},
	} {
		_, err := run(t, append([]string{"swarm"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("swarm %v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"0.5", 90 * time.Second}, {"90s", 90 * time.Second}, {"1m", time.Minute}} {
		if got, err := parseWhen("--late-after", tc.in, 3*time.Minute); err != nil || got != tc.want {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestSwarmEndToEnd runs a two-miner swarm of a tiny model for a few
// seconds: epochs get reported, and no process is left behind.
func TestSwarmEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv("DTRAIN_TEST_AS_MAIN", "1") // the children are this test binary run as dtrain
	dir := t.TempDir()
	cfg := tinySwarmConfig(t, dir)
	out, err := run(t, "swarm", "--miners", "2", "--minutes", "0.15", "--no-churn", "--json",
		"--config", cfg, "--dir", filepath.Join(dir, "swarm"))
	if err != nil {
		t.Fatalf("swarm: %v\n%s", err, out)
	}
	var pids []int
	epochs := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var ev struct {
			Event string `json:"event"`
			PID   int    `json:"pid"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		if ev.PID > 0 {
			pids = append(pids, ev.PID)
		}
		if ev.Event == "epoch" {
			epochs++
		}
	}
	t.Logf("%d epoch lines in 9 s", epochs)
	if epochs == 0 || len(pids) != 3 {
		t.Errorf("%d epoch lines and %d processes (want ≥ 1 and 3):\n%s", epochs, len(pids), out)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still there after the swarm returned (kill 0: %v)", pid, err)
		}
	}
	for _, f := range []string{"miner.toml", "bootstrap.log", "miner-1.log", "miner-2.log"} {
		if _, err := os.Stat(filepath.Join(dir, "swarm", f)); err != nil {
			t.Errorf("work dir: %v", err)
		}
	}
}

// tinySwarmConfig writes a one-block model's miner config over a
// generated token shard in dir, for swarm runs of a few seconds.
func tinySwarmConfig(t *testing.T, dir string) string {
	t.Helper()
	toks := make([]int32, 20000)
	for i := range toks {
		toks[i] = int32((i*7)%97 + (i/13)%5)
	}
	must(t, data.WriteShard(filepath.Join(dir, "train_000000.bin"), toks[:18000]))
	must(t, data.WriteShard(filepath.Join(dir, "val_000000.bin"), toks[18000:]))
	cfg := filepath.Join(dir, "miner.toml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
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
[swarm]
inner_steps = 2
match_seconds = 3
round_seconds = 5
`, dir)), 0o644))
	return cfg
}
