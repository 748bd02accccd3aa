package epoch

import (
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/progress"
)

// TestTargetBatchReports: in gradients mode a training peer estimates the
// others' samples from their reports, extrapolated at their rates, and
// reports every Heartbeat until the swarm is two heartbeats from the
// target, then every eighth of one; an idle peer reports rate 0, and a
// peer without a target always reports every Heartbeat.
func TestTargetBatchReports(t *testing.T) {
	const s = time.Second
	newMachine := func(target uint64) *Machine {
		m, err := New(Config{Run: "r", Self: "a", Role: matchmaking.Full, MinGroup: 2, MaxGroup: 4,
			MatchTimeout: s, DelegateTimeout: s, RoundTimeout: s, Heartbeat: s, Expiry: 10 * s, TargetSamples: target})
		if err != nil {
			t.Fatal(err)
		}
		m.Start(0, 0, [32]byte{1})
		if m.Tick(3 * s); m.Phase() != Training {
			t.Fatalf("phase %v after listening", m.Phase())
		}
		return m
	}
	report := func(peer string, epoch uint64, samples uint64, rate float64, at time.Duration) progress.Report {
		return progress.Report{Peer: peer, Epoch: epoch, Samples: samples, SamplesPerSec: rate, StateHash: [32]byte{1}, Offers: true, Time: int64(at / time.Millisecond)}
	}
	m := newMachine(1000)
	for _, r := range []progress.Report{
		report("b", 0, 100, 50, 3*s),
		report("c", 0, 40, 10, 3*s),
		report("d", 1, 900, 500, 3*s), // another epoch: not this one's samples
	} {
		if _, err := m.Observe(3*s, r); err != nil {
			t.Fatal(err)
		}
	}
	if got, rate := m.OthersProgress(5 * s); got != 100+40+2*60 || rate != 60 {
		t.Fatalf("OthersProgress 2 s after the reports = %v at %v/s, want 260 at 60/s", got, rate)
	}
	// At 3 s: others 140 at 60/s, self 0 at 40/s: 860 left at 100/s, 8.6 s.
	m.SetProgress(0, 40)
	m.Tick(4 * s) // reports at 4 s (200 by the others' rates, 660 left: 6.6 s)
	if next := m.NextTick(); next != 5*s {
		t.Fatalf("next report at %v with the target 6.6 s away, want a heartbeat later (5s)", next)
	}
	m.SetProgress(200, 40)
	m.Tick(5 * s) // others 260 + own 200: 540 left at 100/s, 5.4 s: fast reports from 8.4 s
	if next := m.NextTick(); next != 6*s {
		t.Fatalf("next report at %v, want 6s", next)
	}
	m.SetProgress(480, 40)
	m.Tick(6 * s) // others 320 + 480: 200 left, 2 s: within two heartbeats
	if next := m.NextTick(); next != 6*s+s/8 {
		t.Fatalf("next report at %v with the target 2 s away, want an eighth of a heartbeat later", next)
	}
	m.Trained(6*s+s/16, 520)
	if m.Phase() != Matching {
		t.Fatalf("phase %v after training", m.Phase())
	}
	if next := m.NextTick(); next > 7*s {
		t.Fatalf("next tick at %v, want matchmaking's or a heartbeat after the last report", next)
	}
	// The first report is the heartbeat's, in matchmaking; a failed
	// matchmaking then starts the epoch over, and the report that says so
	// counts its samples from 0 again.
	var reports []progress.Report
	for _, a := range m.Tick(7 * s) {
		if a.Kind == Publish {
			reports = append(reports, a.Report)
		}
	}
	if len(reports) == 0 || reports[0].SamplesPerSec != 0 || reports[0].Samples != 480 {
		t.Fatalf("a peer done training reports %+v, want its last count at 0/s", reports)
	}
	for _, r := range reports[1:] {
		if r.Samples != 0 {
			t.Fatalf("a peer training its epoch afresh reports %d samples", r.Samples)
		}
	}

	plain := newMachine(0)
	if _, err := plain.Observe(3*s, report("b", 0, 10_000, 5000, 3*s)); err != nil {
		t.Fatal(err)
	}
	plain.SetProgress(100, 40)
	plain.Tick(4 * s)
	if next := plain.NextTick(); next != 5*s {
		t.Fatalf("without a target: next report at %v, want 5s", next)
	}
}
