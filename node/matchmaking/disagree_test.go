package matchmaking

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// TestDisagreeingViewsNeverForm makes round-0 views genuinely differ: an
// announcement reaches some peers only after their deadline, so their ready
// sets, and so their views, lack it. No group may form in round 0, where
// no view is unanimous (a majority is not enough); round 1 must use the
// intersection of the views; and what forms must be consistent.
func TestDisagreeingViewsNeverForm(t *testing.T) {
	tests := []struct {
		name string
		late map[string][]string // announcer: peers it reaches after the deadline
		want []string            // the group, formed in round 1
		out  []string            // in no group: ErrBelowMin
	}{
		{
			// p000-p002 view {p000..p004}, a majority of that view's five
			// members; p003 and p004 view {p000..p005}.
			name: "one late announcement",
			late: map[string][]string{"p005": {"p000", "p001", "p002"}},
			want: []string{"p000", "p001", "p002", "p003", "p004"},
			out:  []string{"p005"},
		},
		{
			// Four different views; their intersection is smaller than each.
			name: "two late announcements",
			late: map[string][]string{"p004": {"p000", "p001"}, "p005": {"p002", "p003"}},
			want: []string{"p000", "p001", "p002", "p003"},
			out:  []string{"p004", "p005"},
		},
	}
	cfg := Config{Run: "run", MinGroup: 2, MaxGroup: 16, Deadline: time.Second, ConfirmTimeout: 500 * time.Millisecond}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSwarm(t, 1, 6, cfg, sim.Link{Latency: 5 * time.Millisecond})
			for from, tos := range tt.late {
				for _, to := range tos {
					must(t, s.net.SetLatency(sim.ID(from), sim.ID(to), cfg.Deadline+200*time.Millisecond))
				}
			}
			s.announceAll(0)
			s.net.RunUntilIdle()
			views := make(map[string]bool)
			for _, id := range s.ids {
				views[memberKey(s.mm[id].mine[0])] = true
			}
			if len(views) < 2 {
				t.Fatalf("round-0 views all alike: the test does not test disagreement")
			}
			gs, errs := s.groups()
			for id := range gs {
				if s.mm[id].formedAt == 0 {
					t.Fatalf("%s formed %v in round 0, where the views differ", id, memberIDs(gs[id].Members))
				}
			}
			checkWhole(t, s, gs, errs)
			for _, id := range tt.want {
				m := s.mm[id]
				if g, ok := gs[id]; !ok || !slices.Equal(memberIDs(g.Members), tt.want) || m.formedAt != 1 {
					t.Fatalf("%s holds %v from round %d (%v), want %v from round 1", id, memberIDs(g.Members), m.formedAt, errs[id], tt.want)
				}
				if len(m.mine) < 2 || !slices.Equal(memberIDs(m.mine[1]), tt.want) {
					t.Fatalf("%s sent round-1 views %v, want the intersection %v", id, memberIDs(m.mine[min(1, len(m.mine)-1)]), tt.want)
				}
			}
			for _, id := range tt.out {
				if !errors.Is(errs[id], ErrBelowMin) {
					t.Fatalf("%s: %v, want ErrBelowMin", id, errs[id])
				}
			}
		})
	}
}

func memberKey(ms []Member) string { return groupKey("", 0, ms) }

// TestSelfStaysInItsView: a member whose view holds this peer with other
// values (another announcement of this peer reached it first, with another
// weight) disagrees with this peer's view, and the intersection leaves
// this peer's entry out of every other member's next view. This peer's
// own next view must still hold itself, with its own values: it never
// sends, and never forms, a group without itself, and ends below MinGroup
// when the others go on without it.
func TestSelfStaysInItsView(t *testing.T) {
	cfg := Config{Run: "run", Self: "b", MinGroup: 2, MaxGroup: 16, Deadline: time.Second, ConfirmTimeout: 500 * time.Millisecond}
	m, err := New(cfg)
	must(t, err)
	ready := func(id string, w float64) Ready { return Ready{Run: "run", Peer: id, Role: Full, Weight: w} }
	member := func(id string, w float64) Member { return ready(id, w).member() }
	_, err = m.Announce(0, ready("b", 1))
	must(t, err)
	for _, id := range []string{"a", "c", "d"} {
		_, err := m.Receive(0, id, Msg{Ready: []Ready{ready(id, 1)}})
		must(t, err)
	}
	m.Tick(cfg.Deadline)
	all := []Member{member("a", 1), member("b", 1), member("c", 1), member("d", 1)}
	if !slices.Equal(m.view, all) {
		t.Fatalf("round-0 view %v, want %v", m.view, all)
	}
	stale := []Member{member("a", 1), member("b", 3), member("c", 1), member("d", 1)}
	views := map[string][]Member{"a": stale, "c": all, "d": all}
	for _, id := range []string{"a", "c", "d"} {
		_, err := m.Receive(cfg.Deadline+10*time.Millisecond, id, Msg{View: &View{Run: "run", Round: 0, Members: views[id]}})
		must(t, err)
	}
	if m.Done() || m.round != 1 {
		t.Fatalf("after differing round-0 views: done %v, round %d, want round 1", m.Done(), m.round)
	}
	if !contains(m.view, "b") {
		t.Fatalf("round-1 view %v leaves this peer (b) out", memberIDs(m.view))
	}
	// The others' round-1 views leave b out: they go on without it.
	others := []Member{member("a", 1), member("c", 1), member("d", 1)}
	for _, id := range []string{"a", "c", "d"} {
		_, err := m.Receive(cfg.Deadline+cfg.ConfirmTimeout+10*time.Millisecond, id, Msg{View: &View{Run: "run", Round: 1, Members: others}})
		must(t, err)
	}
	for now := cfg.Deadline; !m.Done() && now < cfg.Deadline+time.Duration(DefaultMaxRounds+1)*cfg.ConfirmTimeout; now += cfg.ConfirmTimeout / 2 {
		m.Tick(now)
	}
	g, err := m.Group()
	if err == nil {
		t.Fatalf("b formed %v, want no group", memberIDs(g.Members))
	}
	if !errors.Is(err, ErrBelowMin) {
		t.Fatalf("b ends with %v, want ErrBelowMin", err)
	}
}
