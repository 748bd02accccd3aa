package links

import (
	"math"
	"testing"
	"time"
)

const mb = 1 << 20

// took is how long mb bytes take at r bytes/s.
func took(r float64) time.Duration { return time.Duration(mb / r * float64(time.Second)) }

// TestEstimatorSeries: what one source's estimate of one direction is after
// each sample, for sequences a link produces.
func TestEstimatorSeries(t *testing.T) {
	cases := []struct {
		name    string
		samples []float64 // bytes/s
		want    float64
	}{
		{"one sample", []float64{10e6}, 10e6},
		{"a higher second sample is not believed yet", []float64{10e6, 40e6}, 10e6},
		{"a lower second sample counts", []float64{10e6, 6e6}, 8e6},
		{"steady", []float64{10e6, 10e6, 10e6, 10e6}, 10e6},
		{"one outlier up moves nothing", []float64{10e6, 10e6, 10e6, 1e9, 10e6}, 10e6},
		{"one outlier down moves nothing", []float64{10e6, 10e6, 10e6, 1e3, 10e6}, 10e6},
		{"a lasting change is followed", []float64{10e6, 10e6, 10e6, 20e6, 20e6, 20e6, 20e6, 20e6, 20e6}, 20e6 - 10e6/32},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e Estimator
			for _, r := range c.samples {
				if !e.Add(Probe, Up, mb, took(r)) {
					t.Fatalf("sample %v not taken", r)
				}
			}
			if got := e.Rates().Up; math.Abs(got-c.want) > c.want*1e-6 {
				t.Fatalf("estimate %v, want %v", got, c.want)
			}
		})
	}
}

// TestEstimatorSources: a direction's rate is the larger of the probes'
// and the rounds' estimates (both lower bounds); directions are apart; too
// small or untimed transfers are no samples.
func TestEstimatorSources(t *testing.T) {
	var e Estimator
	if r := e.Rates(); r != (Rates{}) || r.Bandwidth() != 0 || e.ProbeBytes() != 2*mb {
		t.Fatalf("empty estimator: %+v, bandwidth %v, probe %d", r, r.Bandwidth(), e.ProbeBytes())
	}
	e.Add(Probe, Up, mb, took(20e6))
	e.Add(Round, Up, mb, took(5e6)) // slowed by a slow group member
	e.Add(Round, Down, mb, took(8e6))
	if r := e.Rates(); r.Up != 20e6 || r.Down != 8e6 || r.Bandwidth() != 8e6 {
		t.Fatalf("rates %+v, bandwidth %v: want up 20e6 (the probe), down 8e6, bandwidth the slower", r, r.Bandwidth())
	}
	if got := (Rates{Up: 3}).Bandwidth(); got != 3 {
		t.Fatalf("one direction measured: bandwidth %v, want it", got)
	}
	for _, s := range []struct {
		bytes int64
		took  time.Duration
	}{{MinSampleBytes - 1, time.Second}, {mb, 0}, {mb, -time.Second}} {
		if e.Add(Probe, Down, s.bytes, s.took) {
			t.Fatalf("%d bytes in %v taken as a sample", s.bytes, s.took)
		}
	}
	if e.Add(Source(7), Up, mb, time.Second) || e.Add(Probe, Direction(-1), mb, time.Second) {
		t.Fatal("unknown source or direction taken")
	}
	if r := e.Rates(); r.Down != 8e6 {
		t.Fatalf("refused samples changed the estimate: %+v", r)
	}
}

// TestProbeBytes: half a second at the slower estimated rate, bounded.
func TestProbeBytes(t *testing.T) {
	for _, c := range []struct {
		rate float64
		want int64
	}{{100e3, MinProbeBytes}, {6.25e6, 3125000}, {1.25e9, MaxProbeBytes}} {
		var e Estimator
		e.Add(Probe, Up, mb, took(c.rate))
		e.Add(Probe, Down, mb, took(c.rate*4))
		if got := e.ProbeBytes(); got != c.want {
			t.Fatalf("at %v bytes/s: probe %d bytes, want %d", c.rate, got, c.want)
		}
	}
}
