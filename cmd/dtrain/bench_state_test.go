package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchStateLoopback runs the state-sync benchmark with 2 donor
// processes and a joiner on loopback: every fetch must succeed (Fetch
// checks the bytes against the donors' offer) and the report must hold
// the probe and both fetches with positive times.
func TestBenchStateLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 3 processes with libp2p hosts")
	}
	t.Setenv("DTRAIN_TEST_AS_MAIN", "1")
	out, err := run(t, "bench", "state", "--donors", "2", "--mb", "3", "--iters", "1", "--warmup", "0", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rep stateBenchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if rep.Bytes != 3<<20 || rep.Donors != 2 || rep.Netns || len(rep.Lines) != 3 {
		t.Fatalf("report %+v", rep)
	}
	for i, want := range []struct {
		what   string
		donors int
	}{{"probe", 1}, {"fetch", 1}, {"fetch", 2}} {
		l := rep.Lines[i]
		if l.What != want.what || l.Donors != want.donors || l.MedianS <= 0 || len(l.IterS) != 1 || l.PerProbe <= 0 {
			t.Errorf("line %d: %+v, want %s from %d donors with a positive time", i, l, want.what, want.donors)
		}
	}
	t.Logf("probe %.3fs, fetch from 1 donor %.3fs, from 2 %.3fs", rep.Lines[0].MedianS, rep.Lines[1].MedianS, rep.Lines[2].MedianS)
}

func TestBenchStateBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"--donors", "0"}, {"--mb", "-1"}, {"--transport", "udp"}, {"--iters", "0"},
	} {
		out, err := run(t, append([]string{"bench", "state"}, args...)...)
		if err == nil || !strings.Contains(out+err.Error(), args[0]) {
			t.Errorf("bench state %v: err %v, output %q; want an error naming %s", args, err, out, args[0])
		}
	}
}
