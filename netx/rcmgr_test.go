package netx

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// TestManyConcurrentStreamsToOnePeer opens 512 probe streams at once from one
// node to another, as an all-reduce with many pipelined parts may. With
// go-libp2p's default resource limits 437 of 512 such streams were refused
// ("resource limit exceeded", measured on loopback); netx's limits must let
// every one through.
func TestManyConcurrentStreamsToOnePeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := DefaultConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.EnableNAT = false
	a, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const proto = "/dtrain/test/probe/1.0.0"
	RegisterProbeHandler(b.Host(), proto, 1<<20)
	if err := a.Host().Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	var mu sync.Mutex
	var first error
	for i := 0; i < 512; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := MeasureBandwidth(ctx, a.Host(), b.ID(), proto, 64<<10, Upload)
			if err == nil && r.Bytes != 64<<10 {
				err = context.Canceled
			}
			if err != nil {
				failed.Add(1)
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of 512 concurrent streams failed, first: %v", n, first)
	}
}

// One peer may not take the whole resource budget (issue 17): its streams
// each way and its memory are bounded, by a quarter of the system's
// memory, which stays bounded too.
func TestPeerLimitsAreBounded(t *testing.T) {
	l := resourceLimits().ToPartialLimitConfig()
	sys := l.System.Memory
	if sys <= 0 || sys == rcmgr.Unlimited64 {
		t.Fatalf("system memory limit %v, want a bound", sys)
	}
	for name, r := range map[string]rcmgr.ResourceLimits{"peer": l.PeerDefault, "protocol-peer": l.ProtocolPeerDefault, "service-peer": l.ServicePeerDefault} {
		if r.Memory <= 0 || r.Memory > sys/4 || r.StreamsInbound != peerStreams || r.StreamsOutbound != peerStreams {
			t.Errorf("%s limits %+v: want %d streams each way and memory within %v", name, r, peerStreams, sys/4)
		}
	}
	if c := l.Conn.Memory; c <= 0 || c > sys/4 {
		t.Errorf("connection memory %v, want within %v", c, sys/4)
	}
}
