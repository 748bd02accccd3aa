package netx

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

const testProbe = protocol.ID("/dtrain/test-run/probe/1.0.0")

func TestProbesOnLoopback(t *testing.T) {
	a, b := connectedPair(t, "/ip4/127.0.0.1/udp/0/quic-v1")
	const maxBytes = 64 << 20
	RegisterProbeHandler(b, testProbe, maxBytes)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rtt, err := Ping(ctx, a, b.ID(), testProbe)
	if err != nil {
		t.Fatal(err)
	}
	if rtt <= 0 || rtt > time.Second {
		t.Fatalf("loopback RTT %v, want a positive value well under a second", rtt)
	}
	t.Logf("loopback RTT %v", rtt)

	for _, dir := range []Direction{Upload, Download} {
		for _, n := range []int64{1, 1000, 16 << 20} {
			r, err := MeasureBandwidth(ctx, a, b.ID(), testProbe, n, dir)
			if err != nil {
				t.Fatalf("%v %d bytes: %v", dir, n, err)
			}
			if r.Bytes != n || r.Took <= 0 || r.BitsPerSecond <= 0 {
				t.Fatalf("%v %d bytes: got %+v", dir, n, r)
			}
			t.Logf("%v %9d bytes in %10v: %8.1f Mbit/s", dir, n, r.Took, r.BitsPerSecond/1e6)
		}
	}
}

func TestProbeRefusals(t *testing.T) {
	a, b := connectedPair(t, "/ip4/127.0.0.1/udp/0/quic-v1")
	RegisterProbeHandler(b, testProbe, 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, dir := range []Direction{Upload, Download} {
		if _, err := MeasureBandwidth(ctx, a, b.ID(), testProbe, 1<<20+1, dir); !errors.Is(err, ErrProbeRefused) {
			t.Fatalf("%v over the peer's limit: %v, want ErrProbeRefused", dir, err)
		}
	}
	if _, err := MeasureBandwidth(ctx, a, b.ID(), testProbe, 0, Upload); err == nil {
		t.Fatal("zero-byte probe accepted")
	}
	if _, err := MeasureBandwidth(ctx, a, b.ID(), testProbe, 10, Direction(9)); err == nil {
		t.Fatal("unknown direction accepted")
	}
	if _, err := Ping(ctx, a, b.ID(), "/dtrain/other-run/probe/1.0.0"); err == nil {
		t.Fatal("ping on another run's protocol id answered")
	}
	// The refusals left the peer serving.
	if r, err := MeasureBandwidth(ctx, a, b.ID(), testProbe, 1<<20, Download); err != nil || r.Bytes != 1<<20 {
		t.Fatalf("probe after refusals: %+v, %v", r, err)
	}
}

// TestProbeLimits: a server with budgets grants a peer its bytes per
// window and then refuses it (and keeps serving pings), holds the total
// across peers, lets a window's end restore the budget, and resets a stream
// over the concurrent-stream limits at once.
func TestProbeLimits(t *testing.T) {
	a, b := connectedPair(t, "/ip4/127.0.0.1/udp/0/quic-v1")
	// Two streams per peer: a client's next stream may open while the
	// server still ends its last one.
	ServeProbes(b, testProbe, ProbeLimits{MaxBytes: 1 << 20, PeerBytes: 3 << 20, Window: time.Hour, PeerStreams: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, dir := range []Direction{Upload, Download, Upload} {
		if _, err := MeasureBandwidth(ctx, a, b.ID(), testProbe, 1<<20, dir); err != nil {
			t.Fatalf("transfer %d within the budget: %v", i, err)
		}
	}
	if _, err := MeasureBandwidth(ctx, a, b.ID(), testProbe, 1, Download); !errors.Is(err, ErrProbeRefused) {
		t.Fatalf("a byte over the peer's budget: %v, want ErrProbeRefused", err)
	}
	if _, err := Ping(ctx, a, b.ID(), testProbe); err != nil {
		t.Fatalf("ping after the budget is spent: %v", err)
	}

	// Two streams held open: a third at the same time is reset.
	for i := range 2 {
		var err error
		for try := 0; ; try++ {
			var held *FramedStream
			if held, err = openProbe(ctx, a, b.ID(), testProbe); err == nil {
				if err = probeExchange(ctx, held, opPing, 0); err == nil {
					defer held.Close()
					break
				}
			}
			if try == 20 {
				t.Fatalf("stream %d: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond) // the server is still ending an earlier stream
		}
	}
	if _, err := Ping(ctx, a, b.ID(), testProbe); err == nil || errors.Is(err, ErrProbeRefused) {
		t.Fatalf("a third stream at once: %v, want it reset", err)
	}

	lim := &probeLimiter{l: ProbeLimits{PeerBytes: 10, TotalBytes: 15, Window: time.Minute},
		active: map[peer.ID]int{}, spent: map[peer.ID]*probeBudget{}}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at   time.Duration
		p    peer.ID
		n    int64
		want bool
	}{
		{0, "x", 10, true},
		{0, "x", 1, false}, // x's 10 spent
		{0, "y", 6, false}, // the total's 15 would be passed; a refusal costs nothing
		{0, "y", 5, true},
		{0, "z", 1, false},
		{time.Minute, "x", 10, true}, // a new window for x and the total
		{time.Minute, "y", 5, true},  // y's window began with its first grant at 0
		{time.Minute, "y", 1, false},
	}
	for i, s := range steps {
		if err := lim.admit(t0.Add(s.at), s.p, s.n); (err == nil) != s.want {
			t.Fatalf("step %d (%s, %d bytes at %v): %v, want granted %v", i, s.p, s.n, s.at, err, s.want)
		}
	}
}
