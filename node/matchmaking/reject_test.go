package matchmaking

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

// TestBadMessagesRejected feeds one Matchmaker bad announcements and views
// and checks that each is refused with its sentinel and changes nothing:
// the group still forms from the good messages alone.
func TestBadMessagesRejected(t *testing.T) {
	cfg := Config{Run: "run", Self: "a", Epoch: 3, MinGroup: 2, MaxGroup: 4, Deadline: time.Second}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ready := func(id string) Ready { return Ready{Run: "run", Epoch: 3, Peer: id, Weight: 1} }
	if _, err := m.Announce(0, ready("a")); err != nil {
		t.Fatal(err)
	}
	all := []Ready{ready("a")}
	for _, id := range []string{"b", "c", "d", "e"} {
		if _, err := m.Receive(0, id, Msg{Ready: []Ready{ready(id)}}); err != nil {
			t.Fatal(err)
		}
		all = append(all, ready(id))
	}
	groups, _ := Partition("run", 3, all, 2, 4)
	var mine []Member
	outsider := ""
	for _, g := range groups {
		if contains(g, "a") {
			mine = g
		} else {
			outsider = g[0].ID
		}
	}
	member := mine[0].ID
	if member == "a" {
		member = mine[1].ID
	}
	view := func(members []Member, mod func(*View)) Msg {
		v := View{Run: "run", Epoch: 3, Members: members}
		if mod != nil {
			mod(&v)
		}
		return Msg{View: &v}
	}
	with := func(mod func(*Ready)) Msg {
		r := ready("x")
		mod(&r)
		return Msg{Ready: []Ready{r}}
	}
	before := []struct {
		name string
		from string
		msg  Msg
		want error
	}{
		{"wrong epoch", "x", with(func(r *Ready) { r.Epoch = 4 }), ErrWrongEpoch},
		{"wrong run", "x", with(func(r *Ready) { r.Run = "other" }), ErrWrongEpoch},
		{"second, different ready", "b", with(func(r *Ready) { r.Peer, r.Weight = "b", 2 }), ErrDuplicate},
		{"unknown role", "x", with(func(r *Ready) { r.Role = 7 }), ErrBadMessage},
		{"NaN weight", "x", with(func(r *Ready) { r.Weight = math.NaN() }), ErrBadMessage},
		{"negative bandwidth", "x", with(func(r *Ready) { r.Bandwidth = -1 }), ErrBadMessage},
		{"aux with weight", "x", with(func(r *Ready) { r.Role = Aux }), ErrBadMessage},
		{"empty peer", "x", with(func(r *Ready) { r.Peer = "" }), ErrBadMessage},
		{"empty message", "x", Msg{}, ErrBadMessage},
		{"ready and view", "x", Msg{Ready: []Ready{ready("x")}, View: &View{}}, ErrBadMessage},
		{"view from a peer never ready", "z", view([]Member{{ID: "z"}}, nil), ErrNotReady},
	}
	for _, c := range before {
		if _, err := m.Receive(10*time.Millisecond, c.from, c.msg); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := m.Receive(0, "c", Msg{Ready: []Ready{ready("b")}}); err != nil {
		t.Errorf("identical ready relayed again: %v, want it ignored", err)
	}
	if _, err := m.Announce(0, ready("b")); !errors.Is(err, ErrBadMessage) {
		t.Errorf("announce as another peer: %v, want ErrBadMessage", err)
	}
	out := m.Tick(cfg.Deadline)
	if len(out) != len(mine)-1 || m.Done() {
		t.Fatalf("at the deadline: %d views sent, done %v; want %d views to the group", len(out), m.Done(), len(mine)-1)
	}
	unsorted := append([]Member(nil), mine...)
	unsorted[0], unsorted[1] = unsorted[1], unsorted[0]
	after := []struct {
		name string
		from string
		msg  Msg
		want error
	}{
		{"late ready", "x", Msg{Ready: []Ready{ready("x")}}, ErrLate},
		{"view for another epoch", member, view(mine, func(v *View) { v.Epoch = 2 }), ErrWrongEpoch},
		{"view out of id order", member, view(unsorted, nil), ErrBadMessage},
		{"view without its sender", outsider, view(mine, nil), ErrBadMessage},
		{"view round out of range", member, view(mine, func(v *View) { v.Round = 99 }), ErrBadMessage},
		{"view from outside the group", outsider, view(groupOf(groups, outsider), nil), ErrNotReady},
	}
	for _, c := range after {
		if _, err := m.Receive(cfg.Deadline, c.from, c.msg); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	for i, x := range mine {
		if x.ID == "a" {
			continue
		}
		if _, err := m.Receive(cfg.Deadline, x.ID, view(mine, nil)); err != nil {
			t.Fatalf("good view from %s: %v", x.ID, err)
		}
		if i == 0 || (i == 1 && mine[0].ID == "a") {
			if _, err := m.Receive(cfg.Deadline, x.ID, view(mine, nil)); !m.Done() && !errors.Is(err, ErrDuplicate) {
				t.Errorf("duplicate view: %v, want ErrDuplicate", err)
			}
		}
	}
	g, err := m.Group()
	if err != nil || !reflect.DeepEqual(g.Members, mine) {
		t.Fatalf("group %v, %v; want %v", g.Members, err, mine)
	}
}

func groupOf(groups [][]Member, id string) []Member {
	for _, g := range groups {
		if contains(g, id) {
			return g
		}
	}
	return nil
}
