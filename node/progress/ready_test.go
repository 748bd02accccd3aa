package progress

import (
	"testing"
	"time"
)

// TestReadyByHand checks the estimate against numbers worked out by hand:
// target 1000 samples, at now = 100 s
//
//	a: 200 samples at 50/s sent at 98 s -> 200 + 50·2 = 300
//	b: 100 samples at 25/s sent at 100 s -> 100
//	c: epoch 4, not counted; d: epoch 5 but expired at 100 s
//
// so 400 samples at 75/s: 600 left, ready at 100 + 600/75 = 108 s.
func TestReadyByHand(t *testing.T) {
	const s = time.Second
	tr := NewTracker(Config{TargetSamples: 1000, Expiry: 60 * s})
	mustObserve(t, tr, 40*s, Report{Peer: "d", Epoch: 5, Samples: 900, SamplesPerSec: 100, Time: 40_000})
	mustObserve(t, tr, 100*s,
		Report{Peer: "a", Epoch: 5, Samples: 200, SamplesPerSec: 50, Time: 98_000},
		Report{Peer: "b", Epoch: 5, Samples: 100, SamplesPerSec: 25, Time: 100_000},
		Report{Peer: "c", Epoch: 4, Samples: 900, SamplesPerSec: 1000, Time: 100_000},
	)
	if got, rate := tr.Accumulated(100*s, 5); got != 400 || rate != 75 {
		t.Fatalf("Accumulated(100 s) = %v at %v/s, want 400 at 75/s", got, rate)
	}
	if got := tr.EstimateReady(100*s, 5); got != 108*s {
		t.Fatalf("EstimateReady(100 s) = %v, want 108s", got)
	}
	if tr.Ready(108*s-time.Millisecond, 5) {
		t.Error("Ready 1 ms before 108 s")
	}
	if !tr.Ready(108*s, 5) {
		t.Error("not Ready at 108 s")
	}
	if got := tr.EstimateReady(110*s, 5); got != 110*s {
		t.Errorf("EstimateReady once ready = %v, want now (110s)", got)
	}
	// The estimate holds as time passes and nothing new arrives.
	if got := tr.EstimateReady(104*s, 5); got != 108*s {
		t.Errorf("EstimateReady(104 s) = %v, want 108s", got)
	}
}

func TestReadyEdges(t *testing.T) {
	const now = 100 * time.Second
	idle := Report{Peer: "a", Epoch: 1, Samples: 10, Time: now.Milliseconds()}
	ahead := Report{Peer: "b", Epoch: 1, Samples: 10, SamplesPerSec: 10, Time: (now + 5*time.Second).Milliseconds()}
	cases := []struct {
		name   string
		target uint64
		rs     []Report
		ready  bool
		eta    time.Duration
	}{
		{"target unused", 0, []Report{idle}, false, Never},
		{"nobody at the epoch", 5, nil, false, Never},
		{"idle swarm short of the target", 20, []Report{idle}, false, Never},
		{"idle swarm at the target", 10, []Report{idle}, true, now},
		// A report dated ahead of now counts as sent now: no negative extrapolation.
		{"clock ahead", 30, []Report{idle, ahead}, false, now + time.Second},
	}
	for _, c := range cases {
		tr := NewTracker(Config{TargetSamples: c.target})
		mustObserve(t, tr, now, c.rs...)
		if got := tr.Ready(now, 1); got != c.ready {
			t.Errorf("%s: Ready = %v, want %v", c.name, got, c.ready)
		}
		if got := tr.EstimateReady(now, 1); got != c.eta {
			t.Errorf("%s: EstimateReady = %v, want %v", c.name, got, c.eta)
		}
	}
}

func TestEstimateReadyOverflow(t *testing.T) {
	tr := NewTracker(Config{TargetSamples: 1 << 62})
	mustObserve(t, tr, 0, Report{Peer: "a", SamplesPerSec: 1e-9})
	if got := tr.EstimateReady(0, 0); got != Never {
		t.Errorf("EstimateReady past a century = %v, want Never", got)
	}
}
