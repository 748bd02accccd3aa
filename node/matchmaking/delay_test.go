package matchmaking

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// TestSlowInboundMemberEndsInTheGroup is issue 14's lost epoch: the views
// sent to one member take longer than a round while its own arrive on
// time. The others form the group, with it, in round 0; it hears no one in
// time. It must end in their group, not give up below min size (or, with
// MinGroup 1, form a group of itself) while they wait for it in the
// all-reduce. Its round trip to them stays under MaxRounds-1 rounds.
func TestSlowInboundMemberEndsInTheGroup(t *testing.T) {
	for _, minGroup := range []int{2, 1} {
		for _, slow := range []time.Duration{1100 * time.Millisecond, 1500 * time.Millisecond, 1900 * time.Millisecond} {
			cfg := Config{Run: "run", MinGroup: minGroup, MaxGroup: 16, Deadline: 2 * time.Second, ConfirmTimeout: time.Second}
			s := newSwarm(t, 1, 4, cfg, sim.Link{Latency: 5 * time.Millisecond})
			const x = "p002"
			for _, id := range s.ids {
				if id != x {
					must(t, s.net.SetLatency(sim.ID(id), x, slow))
				}
			}
			s.announceAll(0)
			s.net.RunUntilIdle()
			gs, errs := s.groups()
			checkWhole(t, s, gs, errs)
			if len(gs) != 4 || len(gs[x].Members) != 4 {
				t.Fatalf("min %d, inbound %v: %d of 4 formed, %s holds %v, errors %v; want all four in one group",
					minGroup, slow, len(gs), x, memberIDs(gs[x].Members), errs)
			}
			if end := cfg.Deadline + time.Duration(DefaultMaxRounds)*cfg.ConfirmTimeout; s.lastDone() > end {
				t.Fatalf("min %d, inbound %v: done at %v, after the last round's end %v", minGroup, slow, s.lastDone(), end)
			}
			t.Logf("min %d, inbound %v: %s formed at %v", minGroup, slow, x, s.doneAt[x])
		}
	}
}

// TestSlowInboundPastTheLastRound pins what the package doc says does not
// hold: when a member's round trip to the others exceeds the rounds left,
// no answer reaches it in time; it fails cleanly at the last round's end,
// and the others hold a group with it (the all-reduce treats it as a peer
// that failed).
func TestSlowInboundPastTheLastRound(t *testing.T) {
	cfg := Config{Run: "run", MinGroup: 2, MaxGroup: 16, Deadline: 3 * time.Second, ConfirmTimeout: time.Second}
	s := newSwarm(t, 1, 4, cfg, sim.Link{Latency: 5 * time.Millisecond})
	const x = "p002"
	for _, id := range s.ids {
		if id != x {
			must(t, s.net.SetLatency(sim.ID(id), x, 2100*time.Millisecond)) // a round trip of 2.11 s > 2 rounds
		}
	}
	s.announceAll(0)
	s.net.RunUntilIdle()
	gs, errs := s.groups()
	checkConsistent(t, s, gs)
	end := cfg.Deadline + time.Duration(DefaultMaxRounds)*cfg.ConfirmTimeout
	if !errors.Is(errs[x], ErrBelowMin) || s.doneAt[x] != end {
		t.Fatalf("%s: %v at %v, want ErrBelowMin at the last round's end %v", x, errs[x], s.doneAt[x], end)
	}
	if len(gs) != 3 || !contains(gs["p000"].Members, x) {
		t.Fatalf("groups %v: want the three others to hold a group with %s", gs, x)
	}
}

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

// TestCrashWhileSendingViews: p003 crashes while its round-0 views are on
// its (slow) uplink, so only p000 gets one and forms the whole group. The
// others hear nothing from p003; they ask p000 in round 1, but its answer
// takes a round trip (600 ms) longer than a round (500 ms). p000 agreed with
// them in round 0 and is silent in round 1, so it may have formed: they must
// wait for its answer, not form {p001 p002} without it.
func TestCrashWhileSendingViews(t *testing.T) {
	cfg := Config{Run: "run", MinGroup: 2, MaxGroup: 16, Deadline: 2 * time.Second, ConfirmTimeout: 500 * time.Millisecond}
	s := newSwarm(t, 1, 4, cfg, sim.Link{Latency: 5 * time.Millisecond})
	must(t, s.net.SetBandwidth("p003", 0, 2000, 0)) // a 208-byte view each ~100 ms
	for _, id := range []sim.ID{"p001", "p002"} {
		must(t, s.net.SetLatency(id, "p000", 300*time.Millisecond))
		must(t, s.net.SetLatency("p000", id, 300*time.Millisecond))
	}
	must(t, s.net.Crash("p003", cfg.Deadline+150*time.Millisecond)) // its view to p000 is out
	s.announceAll(0)
	s.net.RunUntilIdle()
	gs, errs := s.groups()
	delete(gs, "p003")
	delete(errs, "p003")
	checkWhole(t, s, gs, errs)
	want := []string{"p000", "p001", "p002", "p003"}
	for _, id := range want[:3] {
		if g, ok := gs[id]; !ok || !slices.Equal(memberIDs(g.Members), want) {
			t.Fatalf("%s holds %v (%v), want %v", id, memberIDs(g.Members), errs[id], want)
		}
	}
}

// checkWhole asserts checkConsistent and that every member of every formed
// group formed that group too: none ended with an error or another group.
func checkWhole(t *testing.T, s *swarm, gs map[string]Group, errs map[string]error) map[string]Group {
	t.Helper()
	byKey := checkConsistent(t, s, gs)
	for _, id := range slices.Sorted(maps.Keys(gs)) {
		g := gs[id]
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
