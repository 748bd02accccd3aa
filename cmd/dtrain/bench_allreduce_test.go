package main

import (
	"encoding/json"
	"testing"
)

// TestBenchAllReduceLoopback runs the benchmark with 3 child processes on
// loopback and requires every peer to end with the exact mean of all
// three vectors (with a robust rule: the same bits), and a positive time.
func TestBenchAllReduceLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 3 processes with libp2p hosts")
	}
	// The children are this test binary run as dtrain (see TestMain).
	t.Setenv("DTRAIN_TEST_AS_MAIN", "1")
	for _, tc := range []struct {
		codec, agg string
		maxErr     float64
	}{
		{"none", "mean", 1e-6}, {"int8", "mean", 3e-2},
		// The trimmed mean of 3 values in [-1, 1) with a fifth of the
		// weight cut from each end: every peer holds the same bits (the
		// benchmark checks), within the values' range of the mean.
		{"none", "trimmed_mean", 2},
	} {
		t.Run(tc.codec+"-"+tc.agg, func(t *testing.T) {
			out, err := run(t, "bench", "allreduce", "--peers", "3", "--mb", "1", "--iters", "1", "--warmup", "0",
				"--compress", tc.codec, "--aggregation", tc.agg, "--no-baseline", "--json")
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var rep allReduceBenchReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			if rep.Peers != 3 || rep.Bytes != 1<<20 || len(rep.DTrain.IterS) != 1 || rep.DTrain.MedianS <= 0 || rep.Aggregate != tc.agg {
				t.Fatalf("report %+v", rep)
			}
			if rep.DTrain.MaxErr > tc.maxErr {
				t.Fatalf("max error from the exact mean %g, want at most %g", rep.DTrain.MaxErr, tc.maxErr)
			}
			t.Logf("%s: %.3fs, max error %g", tc.codec, rep.DTrain.MedianS, rep.DTrain.MaxErr)
		})
	}
}

// With --relay the same round runs a second time with every peer reaching
// the others only through a relay process (each child fails the round if
// it holds a direct connection to another), to the same exact mean.
func TestBenchAllReduceRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4 processes with libp2p hosts")
	}
	t.Setenv("DTRAIN_TEST_AS_MAIN", "1")
	out, err := run(t, "bench", "allreduce", "--peers", "3", "--mb", "1", "--iters", "1", "--warmup", "0", "--relay", "--no-baseline", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rep allReduceBenchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if rep.Relay == nil || len(rep.Relay.IterS) != 1 || rep.Relay.MedianS <= 0 || rep.RelayPerD <= 0 {
		t.Fatalf("report %+v, want a relayed round", rep)
	}
	if rep.Relay.MaxErr > 1e-6 || rep.DTrain.MaxErr > 1e-6 {
		t.Fatalf("max error from the exact mean: direct %g, relayed %g", rep.DTrain.MaxErr, rep.Relay.MaxErr)
	}
	t.Logf("direct %.3fs, through the relay %.3fs", rep.DTrain.MedianS, rep.Relay.MedianS)
}
