package main

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/miner"
)

// chaosFixture is a hand-written run of four miners, one line per fact:
// "seconds miner what". What is a process act (start, kill, stop, cont,
// exit), an epoch event ("epoch E C START HASH", C the contributors or
// "drop"), a state load ("loaded E HASH [diverged]") or a raw
// metrics.jsonl line. Hashes are names; aN is the state after epoch N,
// and so on.
const chaosFixture = `
0 1 start
0 2 start
0 3 start
0 4 start
10 1 epoch 0 4 s0 a0
10 2 epoch 0 4 s0 a0
11 3 epoch 0 4 s0 a0
11 4 epoch 0 4 s0 a0
# epoch 1: 1 and 2 average, 3 and 4 drop (a0 relabelled epoch 2)
20 1 epoch 1 2 a0 a1
20 2 epoch 1 2 a0 a1
20 4 epoch 1 drop a0 a0
20 3 epoch 1 drop a0 a0
# replaced 1: miner 1 averaged epoch 1, then takes the dropped a0
21 1 loaded 2 a0 diverged
# epoch 2: 1, 3, 4 average from a0; 2 applies its update alone: a solo fork
30 1 epoch 2 3 a0 b2
30 3 epoch 2 3 a0 b2
30 4 epoch 2 3 a0 b2
30 2 epoch 2 1 a1 x2
# not counted: miner 2's last epoch was alone, not averaged
31 2 loaded 3 b2 diverged
# epoch 3: 2 and 4 average, 1 and 3 drop
40 2 epoch 3 2 b2 c3
40 4 epoch 3 2 b2 c3
40 1 epoch 3 drop b2 b2
40 3 epoch 3 drop b2 b2
41 4 kill
# replaced 2
41 2 loaded 4 b2 diverged
45 4 start
50 1 epoch 4 3 b2 d4
50 2 epoch 4 3 b2 d4
50 3 epoch 4 3 b2 d4
60 1 epoch 5 3 d4 e5
60 2 epoch 5 3 d4 e5
60 3 epoch 5 3 d4 e5
66 4 {"time":"2026-01-01T00:00:00Z","event":"start","epoch":4,"step":40,"resumed":true}
# replaced 3: miner 4 averaged epoch 3 (c3) before it was killed; e5 descends from b2, dropped in epoch 3
67 4 loaded 6 e5
68 1 epoch 6 4 e5 f6
68 2 epoch 6 4 e5 f6
68 3 epoch 6 4 e5 f6
68 4 epoch 6 4 e5 f6
70 1 stop
80 3 kill
85 3 start
90 2 epoch 7 2 f6 h7
90 4 epoch 7 2 f6 h7
# not counted: h7 descends from f6, which miner 3 averaged
95 3 loaded 8 h7
100 2 epoch 8 3 h7 i8
100 3 epoch 8 3 h7 i8
100 4 epoch 8 3 h7 i8
140 1 cont
145 1 loaded 9 i8
# epoch 9: two groups, two versions
150 1 epoch 9 2 i8 j9
150 2 epoch 9 2 i8 j9
150 4 epoch 9 2 i8 k9
# not counted: miner 4's averaged k9 gives way to the other group's averaged j9, not to a dropped update
151 4 loaded 10 j9 diverged
# untraced: nobody made zz
152 4 loaded 11 zz
# epoch 10: miner 2 alone, but nobody else finished it: no fork
158 2 epoch 10 1 j9 l10
# epoch 11: 1, 2 and 3 average; 4 drops, then loads their state: averaged and held by all
160 1 epoch 11 3 l10 m11
160 2 epoch 11 3 l10 m11
160 3 epoch 11 3 l10 m11
160 4 epoch 11 drop l10 l10
161 4 loaded 12 m11
`

// feedChaos plays a fixture into a tally and returns its end.
func feedChaos(t *testing.T, tally *chaosTally, fixture string) time.Time {
	t.Helper()
	var now time.Time
	for _, line := range strings.Split(fixture, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, " ", 3)
		sec, err1 := strconv.ParseFloat(f[0], 64)
		i, err2 := strconv.Atoi(f[1])
		if len(f) < 3 || err1 != nil || err2 != nil {
			t.Fatalf("fixture line %q", line)
		}
		now = tally.start.Add(time.Duration(sec * float64(time.Second)))
		w := strings.Fields(f[2])
		switch w[0] {
		case "start":
			tally.started(now, i)
		case "kill":
			tally.killed(now, i)
		case "exit":
			tally.ended(now, i)
		case "stop":
			tally.stopped(now, i)
		case "cont":
			tally.continued(now, i)
		case "epoch":
			e, _ := strconv.ParseUint(w[1], 10, 64)
			ev := miner.EpochEvent{Epoch: e, Mode: "diloco", Loss: 5, Samples: 4, Tokens: 1000, SyncTime: 100 * time.Millisecond,
				BytesSent: 1000, ParamHash: w[4], StartHash: w[3]}
			if w[2] == "drop" {
				ev.Dropped = true
			} else {
				ev.Contributors, _ = strconv.Atoi(w[2])
				ev.Group = ev.Contributors
			}
			tally.line(now, i, eventLine(ev))
		case "loaded":
			e, _ := strconv.ParseUint(w[1], 10, 64)
			// A diverged miner loads the epoch it is at; the others a later one.
			from := e - 1
			if len(w) > 3 && w[3] == "diverged" {
				from = e
			}
			tally.line(now, i, eventLine(miner.LoadEvent{Epoch: e, FromEpoch: from, Source: "peers", Bytes: 1000,
				Took: 100 * time.Millisecond, Donors: 2, BytesPerSec: 1e4, ParamHash: w[2]}))
		default:
			tally.line(now, i, f[2])
		}
	}
	return now
}

// TestChaosFigures computes the figures of the fixture, which holds each
// kind of failure, and checks each against what a person reads off it.
func TestChaosFigures(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tally := newChaosTally(t0)
	feedChaos(t, tally, chaosFixture)
	tally.finish(t0.Add(160 * time.Second))
	f := tally.figures(7)

	if f.Epochs != 12 || f.Averaged != 7 {
		t.Errorf("averaged epochs %d of %d, want 7 of 12 (0, 4-8, 11)", f.Averaged, f.Epochs)
	}
	wantBad := []chaosBadEpoch{
		{Epoch: 1, Miners: 4, Versions: 1, Dropped: []int{3, 4}, Missed: []int{3, 4}},
		{Epoch: 2, Miners: 4, Versions: 2, Alone: []int{2}},
		{Epoch: 3, Miners: 4, Versions: 1, Dropped: []int{1, 3}, Missed: []int{1, 3}},
		{Epoch: 9, Miners: 3, Versions: 2},
		{Epoch: 10, Miners: 1, Versions: 1, Alone: []int{2}},
	}
	if !reflect.DeepEqual(f.NotAveraged, wantBad) {
		t.Errorf("not averaged:\n got %+v\nwant %+v", f.NotAveraged, wantBad)
	}
	if want := []chaosMinerEpoch{{2, 2}}; !reflect.DeepEqual(f.Solo, want) || f.SoloForks != 1 {
		t.Errorf("solo forks %d %+v, want 1: miner 2 in epoch 2 (miner 2 alone in epoch 10 forks nobody)", f.SoloForks, f.Solo)
	}
	wantRepl := []chaosReplaced{
		{Miner: 1, Averaged: 1, Loaded: 2, Hash: "a0", T: 21},
		{Miner: 2, Averaged: 3, Loaded: 4, Hash: "b2", T: 41},
		{Miner: 4, Averaged: 3, Loaded: 6, Hash: "e5", T: 67},
	}
	if !reflect.DeepEqual(f.ReplacedList, wantRepl) || f.Replaced != 3 {
		t.Errorf("averaged replaced by dropped:\n got %d %+v\nwant 3 %+v", f.Replaced, f.ReplacedList, wantRepl)
	}
	if f.UntracedLoads != 1 {
		t.Errorf("%d untraced loads, want 1 (zz)", f.UntracedLoads)
	}
	if f.Kills != 2 || f.Restarts != 2 || f.Stops != 1 || f.StateLoads != 9 || f.DivergedLoads != 4 {
		t.Errorf("kills %d restarts %d stops %d loads %d (diverged %d), want 2 2 1 9 (4)",
			f.Kills, f.Restarts, f.Stops, f.StateLoads, f.DivergedLoads)
	}
	// Miner 3 finished epoch 8 at 100 s and nothing until the end at 160 s.
	// Miner 1 went 82 s between epochs 6 and 9, 70 s of them frozen.
	if f.LongestS != 60 || f.LongestMiner != 3 || f.LongestUntilT != 160 {
		t.Errorf("longest without an epoch %v s (miner %d, until %v s), want 60 s (miner 3, until 160 s)",
			f.LongestS, f.LongestMiner, f.LongestUntilT)
	}

	var out strings.Builder
	newSwarmReport(&out, false, t0, 1).printChaos(f)
	t.Log("\n" + out.String())
	for _, want := range []string{
		"epochs averaged and held by every miner that finished them: 7 of 12 (58%; target ≥ 90%)\n",
		"not: epoch 1 (4 miners, dropped: 3, 4, then without the average: 3, 4); epoch 2 (4 miners, 2 versions, alone: 2);",
		"epoch 9 (3 miners, 2 versions); epoch 10 (1 miner, alone: 2)\n",
		"solo forks: 1 (target 0): miner 2 epoch 2\n",
		"averaged updates replaced by dropped ones: 3 (target 0): at 0:21 miner 1, which averaged epoch 1, loaded epoch 2 (a0)",
		"kills 2, restarts 2, freezes 1, state loads 9 (4 diverged)\n",
		"without finishing an epoch: 60 s (miner 3, until 2:40)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed figures lack %q", want)
		}
	}
	out.Reset()
	newSwarmReport(&out, true, t0, 1).printChaos(f)
	var obj map[string]any
	if err := json.Unmarshal([]byte(out.String()), &obj); err != nil || obj["event"] != "chaos" ||
		obj["averaged_epochs"] != 7.0 || obj["solo_forks"] != 1.0 || obj["averaged_replaced_by_dropped"] != 3.0 {
		t.Errorf("--json figures %s (%v)", out.String(), err)
	}
}

// TestChaosPlan: a seed gives one plan, and every plan is the issue's
// treatment: an event every 30-60 s, victims back 3-15 s later, two double
// kills and one 40 s freeze, a miner always left working, all back in time.
func TestChaosPlan(t *testing.T) {
	run := 750 * time.Second // 12.5 minutes
	if !reflect.DeepEqual(planChaos(1, 4, run), planChaos(1, 4, run)) {
		t.Fatal("seed 1 gave two plans")
	}
	if reflect.DeepEqual(planChaos(1, 4, run), planChaos(2, 4, run)) {
		t.Error("seeds 1 and 2 gave the same plan")
	}
	for seed := uint64(0); seed < 50; seed++ {
		plan := planChaos(seed, 4, run)
		back := map[int]time.Duration{}
		var prev time.Duration
		doubles, freezes := 0, 0
		for _, e := range plan {
			if gap := e.At - prev; gap < chaosEveryMin || gap > chaosEveryMax {
				t.Fatalf("seed %d: %s between events: %+v", seed, gap, plan)
			}
			prev = e.At
			switch {
			case e.Freeze:
				freezes++
				if len(e.Miners) != 1 || e.Back[0]-e.At != chaosFreeze {
					t.Errorf("seed %d: freeze %+v", seed, e)
				}
			case len(e.Miners) == 2:
				doubles++
			case len(e.Miners) != 1:
				t.Errorf("seed %d: %d victims", seed, len(e.Miners))
			}
			for k, m := range e.Miners {
				if back[m] > e.At {
					t.Errorf("seed %d: miner %d hit at %s while down until %s", seed, m, e.At, back[m])
				}
				back[m] = e.Back[k]
				if d := e.Back[k] - e.At; !e.Freeze && (d < chaosDownMin || d > chaosDownMax) || e.Back[k] >= run {
					t.Errorf("seed %d: miner %d down %s, back at %s", seed, m, d, e.Back[k])
				}
			}
			working := 0
			for m := 1; m <= 4; m++ {
				if back[m] <= e.At {
					working++
				}
			}
			if working == 0 {
				t.Errorf("seed %d: no miner working at %s", seed, e.At)
			}
		}
		if len(plan) < 11 || doubles != chaosDoubles || freezes != 1 {
			t.Errorf("seed %d: %d events, %d double kills, %d freezes; want ≥ 11, 2, 1", seed, len(plan), doubles, freezes)
		}
	}
	if plan := planChaos(1, 4, 40*time.Second); len(plan) > 1 {
		t.Errorf("a 40 s run has room for at most one event, got %+v", plan)
	}
	for _, e := range planChaos(3, 2, run) {
		if len(e.Miners) != 1 {
			t.Errorf("two miners: %d victims at once would leave none working", len(e.Miners))
		}
	}
}

// TestChaosHeader: the plan is printed before the run, as text and as
// one --json object.
func TestChaosHeader(t *testing.T) {
	o := swarmOptions{miners: 4, mode: "diloco", duration: 750 * time.Second, chaos: true, seed: 1}
	cfg, err := swarmConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	c := newChaosRun(o.seed, o.miners, o.duration, time.Now())
	var out strings.Builder
	(&swarm{opts: o, rep: newSwarmReport(&out, false, time.Now(), 1), chaos: c}).header(cfg)
	text := out.String()
	if !strings.Contains(text, "chaos (seed 1): a random miner killed every 30-60 s and restarted 3-15 s later") ||
		!strings.Contains(text, describeChaos(c.plan)[len(c.plan)-1]+"\n") {
		t.Errorf("text header lacks the plan:\n%s", text)
	}
	out.Reset()
	o.json = true
	(&swarm{opts: o, rep: newSwarmReport(&out, true, time.Now(), 1), chaos: c}).header(cfg)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var plan struct {
		Event string `json:"event"`
		Seed  uint64 `json:"seed"`
		Plan  []struct {
			T      float64   `json:"t"`
			Act    string    `json:"act"`
			Miners []int     `json:"miners"`
			Back   []float64 `json:"back_t"`
		} `json:"plan"`
	}
	if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &plan) != nil || plan.Event != "chaos_plan" || plan.Seed != 1 ||
		len(plan.Plan) != len(c.plan) || plan.Plan[0].T != c.plan[0].At.Seconds() || len(plan.Plan[0].Back) != len(plan.Plan[0].Miners) {
		t.Errorf("--json header:\n%s", out.String())
	}
}

func TestChaosFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--seed", "3"}, "--seed is for --chaos"},
		{[]string{"--chaos", "--kill-after", "0.5"}, "--kill-after does not go with --chaos"},
		{[]string{"--chaos", "--late-after", "90s"}, "--late-after does not go with --chaos"},
		{[]string{"--chaos", "--miners", "1"}, "--miners must be 2 to 8"},
	} {
		_, err := run(t, append([]string{"swarm"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("swarm %v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}
