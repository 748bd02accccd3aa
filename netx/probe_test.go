package netx

import (
	"context"
	"errors"
	"testing"
	"time"

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
