package state

import (
	"bytes"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/netx"
)

const benchProbe = "/dtrain/test-run/probe/1.0.0"

// BenchmarkFetch24MiB times Fetch of a 24 MiB state from 1 and 3 loopback
// donors against the baseline of one raw netx download probe of the same
// size from one of those donors, in the same process, and reports the
// ratio (above 1: Fetch moves state faster than one plain stream).
func BenchmarkFetch24MiB(b *testing.B) {
	const size = 24 << 20
	blob := randomBlob(b, size)
	s := newSwarm(b, blob, 3, DonorOptions{})
	netx.RegisterProbeHandler(s.nodes[0].Host(), benchProbe, size)
	ctx := testCtx(b, 5*time.Minute)
	var base time.Duration
	for range 3 {
		r, err := netx.MeasureBandwidth(ctx, s.joiner.Host(), s.ids[0], benchProbe, size, netx.Download)
		if err != nil {
			b.Fatal(err)
		}
		if base == 0 || r.Took < base {
			base = r.Took
		}
	}
	for _, n := range []int{1, 3} {
		b.Run(map[int]string{1: "donors=1", 3: "donors=3"}[n], func(b *testing.B) {
			b.SetBytes(size)
			var took time.Duration
			for b.Loop() {
				got, stats, err := Fetch(ctx, s.joiner.Host(), testProto, s.offer, s.ids[:n], FetchOptions{})
				if err != nil || !bytes.Equal(got, blob) {
					b.Fatalf("fetch: %v", err)
				}
				took += stats.Took
			}
			per := took / time.Duration(b.N)
			b.ReportMetric(float64(size)/per.Seconds()/1e6, "MB/s")
			b.ReportMetric(base.Seconds()/per.Seconds(), "x_probe")
		})
	}
	b.Logf("baseline: one netx download probe of 24 MiB in %v (%.0f MB/s)", base, float64(size)/base.Seconds()/1e6)
}
