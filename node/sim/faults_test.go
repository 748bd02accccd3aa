package sim

import (
	"math/rand"
	"reflect"
	"testing"
	"time"
)

func TestCrashedReceiverGetsNothing(t *testing.T) {
	n, got := build(t, nil, map[ID]Link{"a": {Uplink: 1000, Latency: 10 * time.Millisecond}, "b": {}})
	var drops []Event
	n.Trace(func(e Event) {
		if e.Kind == EventDropCrash {
			drops = append(drops, e)
		}
	})
	send(t, n, "a", "b", 1000) // in flight until 1.01s
	must(t, n.Crash("b", 500*time.Millisecond))
	n.RunUntil(time.Second)
	send(t, n, "a", "b", 10) // sent after the crash
	n.RunUntilIdle()
	if len(got["b"]) != 0 {
		t.Fatalf("crashed peer received at %v", got["b"])
	}
	if len(drops) != 2 || n.Stats().Dropped != 2 {
		t.Fatalf("drops %v, want both messages dropped for the crash", drops)
	}
	if !n.Crashed("b") || n.Crashed("a") {
		t.Fatal("Crashed disagrees with the script")
	}
}

func TestCrashedSender(t *testing.T) {
	n, got := build(t, nil, map[ID]Link{"a": {Uplink: 1000}, "b": {}})
	send(t, n, "a", "b", 500)  // fully sent by 0.5s: delivered
	send(t, n, "a", "b", 1000) // half sent at the crash: lost
	must(t, n.Crash("a", 800*time.Millisecond))
	n.RunUntil(time.Second)
	send(t, n, "a", "b", 0) // a crashed peer sends nothing
	n.RunUntilIdle()
	if want := []time.Duration{500 * time.Millisecond}; !reflect.DeepEqual(got["b"], want) {
		t.Fatalf("arrivals %v, want only the message sent before the crash, %v", got["b"], want)
	}
}

func TestPartitionDropsDuringNotAfter(t *testing.T) {
	links := map[ID]Link{"a1": {Latency: 5 * time.Millisecond}, "a2": {}, "b1": {}, "c": {}}
	n, got := build(t, nil, links)
	must(t, n.Partition([]ID{"a1", "a2"}, []ID{"b1"}, time.Second, 2*time.Second))
	n.RunUntil(1500 * time.Millisecond)
	send(t, n, "a1", "b1", 10) // across, during: lost
	send(t, n, "b1", "a2", 10) // across the other way: lost
	send(t, n, "a1", "a2", 10) // inside a side: delivered
	send(t, n, "a1", "c", 10)  // to a peer on neither side: delivered
	n.RunUntil(1999 * time.Millisecond)
	send(t, n, "a1", "b1", 10) // sent during, would arrive after: lost
	n.RunUntil(2 * time.Second)
	send(t, n, "a1", "b1", 10) // after: delivered
	n.RunUntilIdle()
	want := map[ID][]time.Duration{
		"a2": {1505 * time.Millisecond},
		"c":  {1505 * time.Millisecond},
		"b1": {2005 * time.Millisecond},
	}
	if !reflect.DeepEqual(map[ID][]time.Duration(got), want) {
		t.Fatalf("arrivals %v, want %v", got, want)
	}
	if s := n.Stats(); s.Dropped != 3 {
		t.Fatalf("stats %+v, want 3 dropped", s)
	}
}

// script runs a random workload with jitter, crashes, a partition and a slow
// link, all drawn from seed, and returns its trace.
func script(t *testing.T, seed int64) []Event {
	rng := rand.New(rand.NewSource(seed))
	n := New(rng)
	var trace []Event
	n.Trace(func(e Event) { trace = append(trace, e) })
	const peers = 50
	for i := 0; i < peers; i++ {
		link := Link{Uplink: float64(1e4 + rng.Intn(1e6)), Downlink: float64(1e4 + rng.Intn(1e6)),
			Latency: time.Duration(rng.Intn(5e7)), Jitter: time.Duration(rng.Intn(1e7))}
		self := id(i)
		if err := n.AddPeer(self, link, func(now time.Duration, from ID, msg Message) {
			if hops := msg.Payload.(int); hops > 0 {
				_ = n.Send(self, id(rng.Intn(peers)), Message{Size: rng.Intn(1e5), Payload: hops - 1})
			}
		}); err != nil {
			t.Fatal(err)
		}
		_, _ = n.After(self, time.Duration(rng.Intn(1e9)), func(now time.Duration) {
			_ = n.Send(self, id(rng.Intn(peers)), Message{Size: rng.Intn(1e5), Payload: 5})
		})
	}
	_ = n.Crash(id(rng.Intn(peers)), time.Duration(rng.Intn(1e9)))
	_ = n.Partition([]ID{id(0), id(1), id(2)}, []ID{id(3), id(4)}, 0, time.Second)
	_ = n.SetBandwidth(id(5), 500*time.Millisecond, 1e3, 1e3)
	n.RunUntilIdle()
	return trace
}

func TestSameSeedSameTrace(t *testing.T) {
	a, b := script(t, 42), script(t, 42)
	if len(a) < 300 {
		t.Fatalf("trace of %d events: the script should do more", len(a))
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed and script gave different traces")
	}
	if reflect.DeepEqual(a, script(t, 43)) {
		t.Fatal("a different seed gave the same trace: the seed is not used")
	}
}

// TestScale: 1000 peers each send 16 messages to random others over
// heterogeneous links; all arrive, no later than the busiest link allows
// plus latency, in well under a second of wall time.
func TestScale(t *testing.T) {
	const peers, each, size = 1000, 16, 1 << 20
	rng := rand.New(rand.NewSource(5))
	n := New(rng)
	links := make([]Link, peers)
	received := 0
	for i := range links {
		links[i] = Link{Uplink: float64(1e6 + rng.Intn(1e8)), Downlink: float64(1e6 + rng.Intn(1e8)),
			Latency: time.Duration(rng.Intn(1e8)), Jitter: time.Millisecond}
		must(t, n.AddPeer(id(i), links[i], func(time.Duration, ID, Message) { received++ }))
	}
	start := time.Now()
	inbound := make([]int, peers)
	for i := 0; i < peers; i++ {
		for k := 0; k < each; k++ {
			to := rng.Intn(peers - 1)
			if to >= i {
				to++
			}
			inbound[to]++
			must(t, n.Send(id(i), id(to), Message{Size: size}))
		}
	}
	events := n.RunUntilIdle()
	took := time.Since(start)
	if received != peers*each {
		t.Fatalf("received %d of %d messages", received, peers*each)
	}
	// No peer finishes before its own links are done; every head arrives by
	// the busiest uplink's end + latency, and each downlink then works
	// without idling.
	var up, down time.Duration
	for i, l := range links {
		up = max(up, transfer(each*size, l.Uplink))
		down = max(down, transfer(inbound[i]*size, l.Downlink))
	}
	if n.Now() < max(up, down) || n.Now() > up+down+202*time.Millisecond {
		t.Fatalf("virtual finish %v, busiest uplink needs %v, downlink %v", n.Now(), up, down)
	}
	t.Logf("%d peers × %d messages: %d events, virtual %v, wall %v", peers, each, events, n.Now(), took)
	if took > time.Second {
		t.Fatalf("took %v of wall time, want well under a second", took)
	}
}

func BenchmarkScale(b *testing.B) {
	for b.Loop() {
		rng := rand.New(rand.NewSource(5))
		n := New(rng)
		for i := 0; i < 1000; i++ {
			_ = n.AddPeer(id(i), Link{Uplink: 1e7, Downlink: 1e7, Latency: time.Duration(rng.Intn(1e8))}, nil)
		}
		for i := 0; i < 1000; i++ {
			for k := 0; k < 16; k++ {
				_ = n.Send(id(i), id(rng.Intn(1000)), Message{Size: 1 << 20})
			}
		}
		n.RunUntilIdle()
	}
}
