package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchDiscoveryLoopback runs the discovery benchmark with 6 hosts in
// 2 processes: the mesh must form (each child checks that every one of its
// hosts is connected to the other 5) and the report must give the times.
func TestBenchDiscoveryLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 2 processes with libp2p hosts")
	}
	t.Setenv("DTRAIN_TEST_AS_MAIN", "1")
	out, err := run(t, "bench", "discovery", "--peers", "6", "--procs", "2", "--bootstraps", "2", "--timeout", "2m", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rep discoveryReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if rep.Peers != 6 || rep.Procs != 2 || rep.Bootstraps != 2 || rep.JoinSeconds <= 0 || rep.FormSeconds < 0 {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("joined in %.1fs, full mesh %.1fs later", rep.JoinSeconds, rep.FormSeconds)
}

func TestBenchDiscoveryBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"--peers", "1"}, {"--procs", "0"}, {"--procs", "9", "--peers", "8"}, {"--bootstraps", "0"}, {"--timeout", "-1s"},
	} {
		out, err := run(t, append([]string{"bench", "discovery"}, args...)...)
		if err == nil || !strings.Contains(out+err.Error(), args[0]) {
			t.Errorf("bench discovery %v: err %v, output %q; want an error naming %s", args, err, out, args[0])
		}
	}
}
