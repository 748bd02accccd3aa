package epoch

import (
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/progress"
)

// TestLonePeerHoldsItsUpdate: a peer that has heard nobody since it
// started, and whose matchmaking fails, holds its update instead of
// dropping it and training the epoch again (a loop that repeated the
// epoch hundreds of times a second with a tiny model), and applies it
// alone once a whole expiry has passed with nobody heard; a peer heard
// during the hold sends it back to matchmaking with the same update.
func TestLonePeerHoldsItsUpdate(t *testing.T) {
	const s = time.Second
	start := func() *Machine {
		m, err := New(Config{Run: "r", Self: "a", Role: matchmaking.Full, MinGroup: 2, MaxGroup: 4,
			MatchTimeout: 2 * s, DelegateTimeout: 2 * s, RoundTimeout: s, Heartbeat: s, Expiry: 10 * s})
		if err != nil {
			t.Fatal(err)
		}
		m.Start(0, 0, [32]byte{1})
		m.Tick(3 * s)
		if m.Phase() != Training {
			t.Fatalf("phase %v after listening", m.Phase())
		}
		acts := m.Trained(4*s, 16)
		for now := 4 * s; m.Phase() == Matching && now < 8*s; now += s / 4 {
			acts = append(acts, m.Tick(now)...)
		}
		for _, a := range acts {
			if a.Kind == Restore || a.Kind == Train || a.Kind == ApplyAlone {
				t.Fatalf("a lone peer whose matchmaking failed before an expiry: %v", a.Kind)
			}
		}
		if m.Phase() != Holding {
			t.Fatalf("phase %v after a failed matchmaking with nobody heard, want holding", m.Phase())
		}
		return m
	}

	m := start()
	var applied bool
	for now := 8 * s; now <= 11*s && !applied; now += s / 4 {
		for _, a := range m.Tick(now) {
			switch a.Kind {
			case ApplyAlone:
				applied = true
				if now < 10*s {
					t.Fatalf("applied alone at %v, before a whole expiry since the start", now)
				}
			case Restore, Train:
				t.Fatalf("%v while holding", a.Kind)
			}
		}
	}
	if !applied {
		t.Fatal("the held update was never applied alone")
	}

	m = start()
	r := progress.Report{Peer: "b", Epoch: 0, StateHash: [32]byte{1}, Offers: true, Time: int64(8 * s / time.Millisecond)}
	acts, err := m.Observe(8*s, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acts {
		if a.Kind == Restore || a.Kind == Train || a.Kind == ApplyAlone {
			t.Fatalf("a peer heard during the hold: %v", a.Kind)
		}
	}
	if m.Phase() != Matching {
		t.Fatalf("phase %v after a peer was heard during the hold, want matching with the held update", m.Phase())
	}
}
