package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"time"
)

// arrivals records when each peer received what.
type arrivals map[ID][]time.Duration

func (a arrivals) handler(id ID) Handler {
	return func(now time.Duration, from ID, msg Message) { a[id] = append(a[id], now) }
}

// build adds peers with the given links and recording handlers.
func build(t *testing.T, rng *rand.Rand, links map[ID]Link) (*Network, arrivals) {
	t.Helper()
	n, got := New(rng), arrivals{}
	for _, id := range sortedIDs(links) {
		if err := n.AddPeer(id, links[id], got.handler(id)); err != nil {
			t.Fatal(err)
		}
	}
	return n, got
}

func sortedIDs(links map[ID]Link) []ID {
	var ids []ID
	for id := range links {
		ids = append(ids, id)
	}
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if ids[j] < ids[i] {
				ids[i], ids[j] = ids[j], ids[i]
			}
		}
	}
	return ids
}

func send(t *testing.T, n *Network, from, to ID, size int) {
	t.Helper()
	if err := n.Send(from, to, Message{Size: size}); err != nil {
		t.Fatal(err)
	}
}

func TestDeliveryTimes(t *testing.T) {
	const R, L, B = 1e6, 30 * time.Millisecond, 250_000 // B/R = 250 ms
	sym := Link{Uplink: R, Downlink: R}
	tests := []struct {
		name  string
		links map[ID]Link
		sends [][2]ID
		want  map[ID][]time.Duration
	}{
		{"one message takes L + B/R", map[ID]Link{"a": {Uplink: R, Downlink: R, Latency: L}, "b": sym},
			[][2]ID{{"a", "b"}}, map[ID][]time.Duration{"b": {280 * time.Millisecond}}},
		{"two messages share the sender's uplink", map[ID]Link{"a": {Uplink: R, Latency: L}, "b": {}, "c": {}},
			[][2]ID{{"a", "b"}, {"a", "c"}},
			map[ID][]time.Duration{"b": {280 * time.Millisecond}, "c": {530 * time.Millisecond}}},
		{"two messages share the receiver's downlink", map[ID]Link{"a": {Latency: L}, "b": {Latency: L}, "c": {Downlink: R}},
			[][2]ID{{"a", "c"}, {"b", "c"}},
			map[ID][]time.Duration{"c": {280 * time.Millisecond, 530 * time.Millisecond}}},
		{"a slow uplink bounds a fast downlink", map[ID]Link{"a": {Uplink: R / 2, Latency: L}, "b": {Downlink: R}},
			[][2]ID{{"a", "b"}}, map[ID][]time.Duration{"b": {530 * time.Millisecond}}},
		{"a slow downlink bounds a fast uplink", map[ID]Link{"a": {Uplink: R, Latency: L}, "b": {Downlink: R / 5}},
			[][2]ID{{"a", "b"}}, map[ID][]time.Duration{"b": {1280 * time.Millisecond}}},
		{"unlimited links cost only latency", map[ID]Link{"a": {Latency: 10 * time.Millisecond}, "b": {Latency: 20 * time.Millisecond}},
			[][2]ID{{"a", "b"}, {"a", "b"}}, map[ID][]time.Duration{"b": {L, L}}},
		{"a message to oneself arrives at once", map[ID]Link{"a": {Uplink: 1, Latency: L}},
			[][2]ID{{"a", "a"}}, map[ID][]time.Duration{"a": {0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, got := build(t, nil, tt.links)
			for _, s := range tt.sends {
				send(t, n, s[0], s[1], B)
			}
			n.RunUntilIdle()
			if !reflect.DeepEqual(map[ID][]time.Duration(got), tt.want) {
				t.Fatalf("arrivals %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSetLatencyOverridesLinks(t *testing.T) {
	n, got := build(t, nil, map[ID]Link{"a": {Latency: time.Second}, "b": {}})
	if err := n.SetLatency("a", "b", 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	send(t, n, "a", "b", 1)
	send(t, n, "b", "a", 1)
	n.RunUntilIdle()
	if got["b"][0] != 5*time.Millisecond || got["a"][0] != time.Second {
		t.Fatalf("arrivals %v, want b at 5ms (set), a at 1s (links)", got)
	}
}

func TestHandlersReply(t *testing.T) {
	n := New(nil)
	var pongAt time.Duration
	must(t, n.AddPeer("a", Link{Latency: 10 * time.Millisecond}, func(now time.Duration, from ID, msg Message) {
		pongAt = now
	}))
	must(t, n.AddPeer("b", Link{Latency: 15 * time.Millisecond, Uplink: 1000}, func(now time.Duration, from ID, msg Message) {
		must(t, n.Send("b", from, Message{Size: 100, Payload: msg.Payload}))
	}))
	send(t, n, "a", "b", 0)
	n.RunUntilIdle()
	if want := 150 * time.Millisecond; pongAt != want { // 25 ms there, 25 ms + 100 ms back
		t.Fatalf("pong at %v, want %v", pongAt, want)
	}
}

func TestSlowLinkFromATime(t *testing.T) {
	n, got := build(t, nil, map[ID]Link{"a": {Uplink: 1000}, "b": {}})
	must(t, n.SetBandwidth("a", 2*time.Second, 100, 0))
	send(t, n, "a", "b", 1000) // 0..1s at 1000 B/s
	n.RunUntil(3 * time.Second)
	send(t, n, "a", "b", 100) // 3s..4s at 100 B/s
	n.RunUntilIdle()
	want := []time.Duration{time.Second, 4 * time.Second}
	if !reflect.DeepEqual(got["b"], want) {
		t.Fatalf("arrivals %v, want %v", got["b"], want)
	}
}

func TestTimersFireInOrder(t *testing.T) {
	n, _ := build(t, nil, map[ID]Link{"a": {}, "b": {}})
	var fired []string
	at := func(peer ID, d time.Duration, name string) *Timer {
		tm, err := n.After(peer, d, func(now time.Duration) { fired = append(fired, fmt.Sprint(name, "@", now)) })
		must(t, err)
		return tm
	}
	at("a", 3*time.Second, "late")
	at("a", time.Second, "first")
	at("b", time.Second, "second") // same time: set order
	stopped := at("a", 2*time.Second, "stopped")
	at("b", 4*time.Second, "crashed")
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop should report pending once")
	}
	must(t, n.Crash("b", 4*time.Second))
	n.RunUntilIdle()
	want := []string{"first@1s", "second@1s", "late@3s"}
	if !reflect.DeepEqual(fired, want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
	if n.Now() != 4*time.Second {
		t.Fatalf("clock at %v after the last (suppressed) timer, want 4s", n.Now())
	}
}

func TestRunUntilStopsAtTime(t *testing.T) {
	n, got := build(t, nil, map[ID]Link{"a": {Latency: time.Second}, "b": {Latency: time.Second}})
	send(t, n, "a", "b", 1) // due at 2s
	n.RunUntil(1999 * time.Millisecond)
	if len(got["b"]) != 0 || n.Now() != 1999*time.Millisecond {
		t.Fatalf("delivered %v by %v, want nothing by 1.999s", got["b"], n.Now())
	}
	n.RunUntil(2 * time.Second)
	if len(got["b"]) != 1 {
		t.Fatal("message due at 2s not delivered by RunUntil(2s)")
	}
}

func TestBadInput(t *testing.T) {
	n, _ := build(t, nil, map[ID]Link{"a": {}, "b": {}})
	tests := []struct {
		name string
		err  error
	}{
		{"duplicate peer", n.AddPeer("a", Link{}, nil)},
		{"NaN rate", n.AddPeer("c", Link{Uplink: math.NaN()}, nil)},
		{"negative rate", n.AddPeer("c", Link{Downlink: -1}, nil)},
		{"negative latency", n.AddPeer("c", Link{Latency: -1}, nil)},
		{"jitter without rng", n.AddPeer("c", Link{Jitter: time.Millisecond}, nil)},
		{"send to unknown", n.Send("a", "zz", Message{})},
		{"negative size", n.Send("a", "b", Message{Size: -1})},
		{"crash unknown", n.Crash("zz", 0)},
		{"partition unknown", n.Partition([]ID{"a"}, []ID{"zz"}, 0, 1)},
		{"partition both sides", n.Partition([]ID{"a"}, []ID{"a"}, 0, 1)},
		{"partition backwards", n.Partition([]ID{"a"}, []ID{"b"}, 2, 1)},
		{"bandwidth Inf", n.SetBandwidth("a", 0, math.Inf(1), 0)},
		{"negative latency override", n.SetLatency("a", "b", -1)},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	if _, err := n.After("zz", 0, func(time.Duration) {}); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("timer for unknown peer: %v, want ErrUnknownPeer", err)
	}
	if s := n.Stats(); s.Sent != 0 {
		t.Errorf("rejected sends counted: %+v", s)
	}
}

// TestDeliveryBounds checks, over random links and traffic, that no message
// beats its link's physics, that messages on one link (no jitter) arrive in
// the order sent, and that every message is delivered exactly once.
func TestDeliveryBounds(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for trial := 0; trial < 50; trial++ {
		n := New(nil)
		links := make([]Link, 2+rng.Intn(10))
		type key struct{ from, to ID }
		last := map[key]int{}
		for i := range links {
			links[i] = Link{Uplink: float64(1 + rng.Intn(1e6)), Downlink: float64(1 + rng.Intn(1e6)),
				Latency: time.Duration(rng.Intn(1e8))}
			i := i
			must(t, n.AddPeer(id(i), links[i], func(now time.Duration, from ID, msg Message) {
				m := msg.Payload.([3]int) // from, seq, sent
				s, r := links[m[0]], links[i]
				least := s.Latency + r.Latency + transfer(msg.Size, math.Min(s.Uplink, r.Downlink)) - 1
				if now-time.Duration(m[2]) < least {
					t.Fatalf("%d bytes took %v, less than latency + bottleneck %v", msg.Size, now-time.Duration(m[2]), least)
				}
				if k := (key{from, id(i)}); m[1] <= last[k] {
					t.Fatalf("message %d from %s overtook %d", m[1], from, last[k])
				} else {
					last[k] = m[1]
				}
			}))
		}
		for k := 1; k <= 200; k++ {
			n.RunUntil(n.Now() + time.Duration(rng.Intn(1e7)))
			from, to := rng.Intn(len(links)), rng.Intn(len(links))
			if from == to {
				continue
			}
			must(t, n.Send(id(from), id(to), Message{Size: rng.Intn(1e5), Payload: [3]int{from, k, int(n.Now())}}))
		}
		n.RunUntilIdle()
		if s := n.Stats(); s.Delivered != s.Sent || s.Dropped != 0 {
			t.Fatalf("stats %+v: every message should arrive once", s)
		}
	}
}

func id(i int) ID { return ID(fmt.Sprintf("p%04d", i)) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
