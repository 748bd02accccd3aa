package validator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/score"
)

// TestProbeOfSilentMiners: miners that stop answering probes cost the
// validator at most probe.seconds each and are scored as failed probes: one
// that serves no probe protocol, one that accepts the stream and never
// answers, and one that has left. A miner that answers is measured.
func TestProbeOfSilentMiners(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mc := tinyRun()
	cfg := validatorFor(mc, t.TempDir(), nil)
	cfg.Probe.Seconds, cfg.Probe.Bytes = 2, 64<<10
	vn := loopbackNode(t, ctx, nil)
	v := &Validator{cfg: cfg, node: vn, log: zerolog.New(zerolog.NewTestWriter(t))}
	boot := []string{fmt.Sprintf("%s/p2p/%s", vn.Host().Addrs()[0], vn.ID())}
	proto := netx.Protocol(cfg.RunID, "probe")

	answers := loopbackNode(t, ctx, boot)
	netx.ServeProbes(answers, proto, netx.ProbeLimits{MaxBytes: 1 << 20})
	noProtocol := loopbackNode(t, ctx, boot)
	hangs := loopbackNode(t, ctx, boot)
	hangs.SetStreamHandler(proto, func(s network.Stream) {
		<-ctx.Done() // holds the stream, reads nothing, answers nothing
		s.Reset()
	})
	gone := loopbackNode(t, ctx, boot)
	goneID := gone.ID()
	for _, nd := range []*netx.Node{answers, noProtocol, hangs, gone} {
		if err := vn.Host().Connect(ctx, peer.AddrInfo{ID: nd.ID(), Addrs: nd.Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	gone.Close()

	bound := time.Duration(cfg.Probe.Seconds*float64(time.Second)) + time.Second
	for _, c := range []struct {
		name   string
		id     peer.ID
		failed bool
	}{{"answers", answers.ID(), false}, {"no probe protocol", noProtocol.ID(), true},
		{"hangs", hangs.ID(), true}, {"gone", goneID, true}} {
		start := time.Now()
		o := v.probeOne(ctx, 3, c.id.String())
		obs, ok := o.(score.Probe)
		if !ok {
			t.Fatalf("%s: observation %T, want a score.Probe", c.name, o)
		}
		took := time.Since(start)
		t.Logf("%s: %+v in %v", c.name, obs, took)
		if obs.Failed != c.failed || obs.Epoch != 3 || obs.Miner != c.id.String() {
			t.Errorf("%s: probe %+v, want failed %v", c.name, obs, c.failed)
		}
		if !c.failed && (obs.RTT <= 0 || obs.Up <= 0 || obs.Down <= 0) {
			t.Errorf("%s: probe %+v, want an RTT and both rates", c.name, obs)
		}
		if took > bound {
			t.Errorf("%s: the probe took %v, want at most probe.seconds (%v) and a margin", c.name, took, cfg.Probe.Seconds)
		}
	}
}
