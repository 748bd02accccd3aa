package matchmaking

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

var (
	lan  = sim.Link{Latency: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}
	base = Config{Run: "run", MinGroup: 8, MaxGroup: 16, Deadline: time.Second, ConfirmTimeout: 500 * time.Millisecond}
)

func TestSixteenPeersFormOneGroup(t *testing.T) {
	s := newSwarm(t, 1, 16, base, lan)
	roles := make(map[string]Member)
	for i, id := range s.ids {
		r := Ready{Run: "run", Peer: id, Weight: float64(100 + i), Bandwidth: float64(i) * 1e6}
		switch {
		case i%5 == 1:
			r.Role, r.Weight = Aux, 0
		case i%7 == 2:
			r.Role = Client
		}
		roles[id] = r.member()
		s.announce(id, time.Duration(i)*time.Millisecond, r)
	}
	s.net.RunUntilIdle()
	gs, errs := s.groups()
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := gs["p000"]
	if len(want.Members) != 16 {
		t.Fatalf("group of %d, want 16", len(want.Members))
	}
	for id, g := range gs {
		if !reflect.DeepEqual(g, want) {
			t.Fatalf("%s holds %v, p000 holds %v", id, g, want)
		}
	}
	for i, m := range want.Members {
		if m != roles[m.ID] || (i > 0 && want.Members[i-1].ID >= m.ID) {
			t.Fatalf("member %d is %+v, want %+v in id order", i, m, roles[m.ID])
		}
	}
	if s.lastDone() > base.Deadline+100*time.Millisecond {
		t.Fatalf("finished at %v, want one message delay after the deadline %v", s.lastDone(), base.Deadline)
	}
}

func TestExpectedEndsCollectingEarly(t *testing.T) {
	cfg := base
	cfg.Deadline, cfg.Expected = 10*time.Second, 16
	s := newSwarm(t, 6, 16, cfg, lan)
	s.announceAll(0)
	s.net.RunUntilIdle()
	gs, errs := s.groups()
	if len(errs) > 0 || len(checkConsistent(t, s, gs)) != 1 {
		t.Fatalf("errors %v, groups %d; want one group", errs, len(checkConsistent(t, s, gs)))
	}
	if s.lastDone() > 200*time.Millisecond {
		t.Fatalf("finished at %v, want soon after the last Ready, long before the deadline %v", s.lastDone(), cfg.Deadline)
	}
}

func TestHundredPeersSplitIntoBalancedGroups(t *testing.T) {
	s := newSwarm(t, 2, 100, base, lan)
	s.announceAll(0)
	s.net.RunUntilIdle()
	gs, errs := s.groups()
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	byKey := checkConsistent(t, s, gs)
	var sizes []int
	seen := make(map[string]int)
	for _, g := range byKey {
		sizes = append(sizes, len(g.Members))
		for _, m := range g.Members {
			seen[m.ID]++
		}
	}
	slices.Sort(sizes)
	if want := []int{14, 14, 14, 14, 14, 15, 15}; !slices.Equal(sizes, want) {
		t.Fatalf("group sizes %v, want %v", sizes, want)
	}
	for _, id := range s.ids {
		if seen[id] != 1 {
			t.Fatalf("%s is in %d groups, want 1", id, seen[id])
		}
	}
}

func TestGroupsRotateAcrossEpochs(t *testing.T) {
	met := make(map[string]map[string]bool)
	const epochs = 3
	for e := range uint64(epochs) {
		cfg := base
		cfg.Epoch = e
		s := newSwarm(t, int64(e), 100, cfg, lan)
		s.announceAll(e)
		s.net.RunUntilIdle()
		gs, errs := s.groups()
		if len(errs) > 0 {
			t.Fatalf("epoch %d: errors: %v", e, errs)
		}
		for id, g := range gs {
			if met[id] == nil {
				met[id] = make(map[string]bool)
			}
			for _, m := range g.Members {
				if m.ID != id {
					met[id][m.ID] = true
				}
			}
		}
	}
	least, total := 100, 0
	for _, others := range met {
		least = min(least, len(others))
		total += len(others)
	}
	// One epoch's group has 13–14 others; fixed groups would stay there.
	t.Logf("over %d epochs each peer met at least %d distinct peers, mean %.1f (groups of 14–15)", epochs, least, float64(total)/float64(len(met)))
	if least < 30 {
		t.Fatalf("a peer met only %d distinct peers over %d epochs, want >= 30 (groups of 14–15)", least, epochs)
	}
}

func TestLateAnnouncementsExcluded(t *testing.T) {
	s := newSwarm(t, 3, 20, base, lan)
	late := map[string]bool{"p003": true, "p011": true, "p017": true}
	for _, id := range s.ids {
		at := time.Duration(0)
		if late[id] {
			at = base.Deadline + 100*time.Millisecond
		}
		s.announce(id, at, Ready{Run: "run", Peer: id, Weight: 1})
	}
	// The late peers' Readies reach the others anyway (say, relayed late).
	for id := range late {
		r := Ready{Run: "run", Peer: id, Weight: 1}
		s.after(id, base.Deadline+100*time.Millisecond, func(time.Duration) {
			s.dispatch(id, []Outgoing{{Msg: Msg{Ready: []Ready{r}}}})
		})
	}
	s.net.RunUntilIdle()
	gs, errs := s.groups()
	byKey := checkConsistent(t, s, gs)
	if got := sizesOf(byKey); len(gs) != 17 || !slices.Equal(got, []int{8, 9}) {
		t.Fatalf("groups of %v over %d peers, want 8 and 9 of the 17 on time", got, len(gs))
	}
	for id := range late {
		if !errors.Is(errs[id], ErrNotReady) {
			t.Fatalf("late %s: %v, want ErrNotReady", id, errs[id])
		}
		for _, g := range byKey {
			if contains(g.Members, id) {
				t.Fatalf("late %s is in group %v", id, g.Members)
			}
		}
	}
	// Each late Ready is refused by its own peer and by the 19 others.
	// (A late peer's own Announce sends nothing.)
	if got := s.rejected[ErrLate]; got != 3*20 {
		t.Fatalf("%d late rejections, want 60", got)
	}
}

// TestAnnouncementAtTheDeadline sends one Ready that reaches some peers
// before the deadline and others after: views differ, and the confirmation
// rounds must still never leave two members with different formed views.
func TestAnnouncementAtTheDeadline(t *testing.T) {
	formed := 0
	defer func() { t.Logf("%d of 20×40 peers formed a group; the rest failed cleanly", formed) }()
	for seed := range int64(20) {
		s := newSwarm(t, seed, 40, base, sim.Link{Latency: 10 * time.Millisecond, Jitter: 20 * time.Millisecond})
		for _, id := range s.ids {
			at := time.Duration(0)
			if id == "p007" {
				at = base.Deadline - 20*time.Millisecond
			}
			s.announce(id, at, Ready{Run: "run", Peer: id, Weight: 1})
		}
		s.net.RunUntilIdle()
		gs, errs := s.groups()
		checkConsistent(t, s, gs)
		for id, err := range errs {
			if !errors.Is(err, ErrNoAgreement) && !errors.Is(err, ErrBelowMin) && !errors.Is(err, ErrNoGroup) {
				t.Fatalf("seed %d: %s failed with %v, want a clean matchmaking error", seed, id, err)
			}
		}
		if len(gs) < 20 {
			t.Fatalf("seed %d: only %d of 40 peers formed a group", seed, len(gs))
		}
		formed += len(gs)
	}
}

func TestCrashBeforeConfirmation(t *testing.T) {
	for seed := range int64(30) {
		s := newSwarm(t, seed, 16, base, sim.Link{Uplink: 100_000, Latency: 10 * time.Millisecond, Jitter: 10 * time.Millisecond})
		s.announceAll(0)
		// From just before the deadline to mid-way through sending views.
		at := base.Deadline - 50*time.Millisecond + time.Duration(seed)*10*time.Millisecond
		if err := s.net.Crash("p005", at); err != nil {
			t.Fatal(err)
		}
		s.net.RunUntilIdle()
		gs, errs := s.groups()
		delete(gs, "p005")
		delete(errs, "p005")
		byKey := checkConsistent(t, s, gs)
		for id, err := range errs {
			if !errors.Is(err, ErrNoAgreement) && !errors.Is(err, ErrBelowMin) {
				t.Fatalf("seed %d: %s failed with %v", seed, id, err)
			}
		}
		for _, g := range byKey {
			if len(g.Members) < base.MinGroup {
				t.Fatalf("seed %d: group of %d below min", seed, len(g.Members))
			}
		}
		// Crashed before sending its view: excluded, the 15 others agree.
		// Crashed after some member got its view: that member may form
		// with it, and then the others adopt that view (package doc).
		if at < base.Deadline && (len(gs) != 15 || !slices.Equal(sizesOf(byKey), []int{15})) {
			t.Fatalf("seed %d: crash at %v: groups %v over %d survivors, want one group of the 15", seed, at, sizesOf(byKey), len(gs))
		}
		t.Logf("crash at %v: %d survivors formed %d group(s), sizes %v, %d failed", at, len(gs), len(byKey), sizesOf(byKey), len(errs))
	}
}

func sizesOf(byKey map[string]Group) []int {
	var sizes []int
	for _, g := range byKey {
		sizes = append(sizes, len(g.Members))
	}
	slices.Sort(sizes)
	return sizes
}

func TestBelowMinSize(t *testing.T) {
	for _, n := range []int{1, 5} {
		s := newSwarm(t, 4, n, base, lan)
		s.announceAll(0)
		s.net.RunUntilIdle()
		gs, errs := s.groups()
		if len(gs) != 0 || len(errs) != n {
			t.Fatalf("%d peers, min %d: %d groups, want none", n, base.MinGroup, len(gs))
		}
		for id, err := range errs {
			if !errors.Is(err, ErrBelowMin) || err.Error() == "" {
				t.Fatalf("%s: %v, want ErrBelowMin", id, err)
			}
		}
	}
}

// TestNetworkPartitionDuringConfirmation cuts a 16-peer group in two while
// its views are on the wire: each side must form its own group (or fail),
// never a view that spans the cut.
func TestNetworkPartitionDuringConfirmation(t *testing.T) {
	cfg := base
	cfg.MinGroup = 4
	s := newSwarm(t, 7, 16, cfg, lan)
	s.announceAll(0)
	var a, b []sim.ID
	for i, id := range s.ids {
		if i < 8 {
			a = append(a, sim.ID(id))
		} else {
			b = append(b, sim.ID(id))
		}
	}
	if err := s.net.Partition(a, b, cfg.Deadline-time.Millisecond, cfg.Deadline+3*time.Second); err != nil {
		t.Fatal(err)
	}
	s.net.RunUntilIdle()
	gs, errs := s.groups()
	byKey := checkConsistent(t, s, gs)
	if len(errs) > 0 || !slices.Equal(sizesOf(byKey), []int{8, 8}) {
		t.Fatalf("groups %v, errors %v; want one group per side of the cut", sizesOf(byKey), errs)
	}
	for _, g := range byKey {
		side := g.Members[0].ID < "p008"
		for _, m := range g.Members {
			if (m.ID < "p008") != side {
				t.Fatalf("group %v spans the cut", g.Members)
			}
		}
	}
}
