package matchmaking

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// TestRoundsEndOnOneSchedule: members whose round-0 views differ move on
// at different times. p000 and p001 have every view at once and move on;
// p002 waits out round 0 for p003, which left it out (p002's announcement
// reached p003 late), and in round 1 forms at once from the views already
// there. Its own round-1 view, slower than its round-0 one, must still
// count at p000 and p001: were their round 1 to end a timeout after they
// started it, they would form {p000 p001} without p002, which holds
// {p000 p001 p002}.
func TestRoundsEndOnOneSchedule(t *testing.T) {
	cfg := Config{Run: "run", MinGroup: 2, MaxGroup: 16, Deadline: time.Second, ConfirmTimeout: 500 * time.Millisecond}
	s := newSwarm(t, 1, 4, cfg, sim.Link{Latency: 5 * time.Millisecond})
	late := 1200 * time.Millisecond // past the deadline
	must(t, s.net.SetLatency("p003", "p000", late))
	must(t, s.net.SetLatency("p003", "p001", late))
	must(t, s.net.SetLatency("p002", "p003", late))
	s.after("p002", cfg.Deadline+cfg.ConfirmTimeout/2, func(time.Duration) {
		must(t, s.net.SetLatency("p002", "p000", 100*time.Millisecond))
		must(t, s.net.SetLatency("p002", "p001", 100*time.Millisecond))
	})
	s.announceAll(0)
	s.net.RunUntilIdle()
	gs, errs := s.groups()
	checkWhole(t, s, gs, errs)
	want := []string{"p000", "p001", "p002"}
	for _, id := range want {
		if g, ok := gs[id]; !ok || !slices.Equal(memberIDs(g.Members), want) {
			t.Fatalf("%s holds %v (%v), want %v", id, memberIDs(g.Members), errs[id], want)
		}
	}
	if !errors.Is(errs["p003"], ErrBelowMin) {
		t.Fatalf("p003: %v, want ErrBelowMin", errs["p003"])
	}
}

// checkWhole asserts checkConsistent and that every member of every formed
// group formed that group too: none ended with an error or another group.
func checkWhole(t *testing.T, s *swarm, gs map[string]Group, errs map[string]error) map[string]Group {
	t.Helper()
	byKey := checkConsistent(t, s, gs)
	for id, g := range gs {
		for _, x := range g.Members {
			if err := errs[x.ID]; err != nil {
				t.Fatalf("%s formed %v, but its member %s ended with %v", id, memberIDs(g.Members), x.ID, err)
			}
		}
	}
	return byKey
}

func memberIDs(ms []Member) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
