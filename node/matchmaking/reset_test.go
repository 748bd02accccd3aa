package matchmaking

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestResetIsNew runs a matchmaking on a Matchmaker reset from earlier
// ones (larger, smaller, failed) and checks that it forms the group a new
// Matchmaker forms from the same messages, and that a group returned
// before the reset is left as it was.
func TestResetIsNew(t *testing.T) {
	run := func(m *Matchmaker, epoch uint64, n int) (Group, error) {
		cfg := Config{Run: "run", Self: "p0", Epoch: epoch, MinGroup: 2, MaxGroup: 4, Deadline: time.Second, Expected: n}
		if err := m.Reset(cfg); err != nil {
			t.Fatal(err)
		}
		var out []Outgoing
		o, err := m.Announce(0, Ready{Run: "run", Epoch: epoch, Peer: "p0", Role: Full, Weight: 1})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o...)
		for i := 1; i < n; i++ {
			id := fmt.Sprintf("p%d", i)
			o, _ := m.Receive(0, id, Msg{Ready: []Ready{{Run: "run", Epoch: epoch, Peer: id, Role: Full, Weight: float64(i)}}})
			out = append(out, o...)
		}
		// Every other member confirms the view it was sent.
		for _, o := range out {
			if o.Msg.View != nil && o.To != "" {
				v := *o.Msg.View
				_, _ = m.Receive(0, o.To, Msg{View: &v})
			}
		}
		m.Tick(10 * time.Second)
		return m.Group()
	}
	reused := &Matchmaker{}
	first, err := run(reused, 1, 50)
	if err != nil || len(first.Members) < 2 {
		t.Fatalf("first matchmaking: %+v, %v, want a group", first, err)
	}
	kept := first
	kept.Members = append([]Member(nil), first.Members...)
	for i, c := range []struct {
		epoch uint64
		n     int
	}{{2, 7}, {3, 1}, {4, 200}, {5, 50}} {
		got, gotErr := run(reused, c.epoch, c.n)
		want, wantErr := run(&Matchmaker{}, c.epoch, c.n)
		if (c.n > 1 && len(want.Members) < 2) || !reflect.DeepEqual(got, want) || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("run %d: reset gives %+v, %v; new gives %+v, %v", i, got, gotErr, want, wantErr)
		}
	}
	if !reflect.DeepEqual(first, kept) {
		t.Fatalf("a group returned before Reset changed: %+v, was %+v", first, kept)
	}
	if err := reused.Reset(Config{Self: ""}); err == nil {
		t.Fatal("Reset took a config without Self")
	}
}
