package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtrain-dev/dtrain/netx/netns"
)

func TestSwarmLinksFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--links", "50,200"}, "--links gives 2 rates, want one per miner (3, as --miners)"},
		{[]string{"--links", "50,fast,200"}, `--links: "fast" is no rate in Mbit/s`},
		{[]string{"--links", "50,0,200"}, `--links: "0" is no rate in Mbit/s`},
		{[]string{"--links", "50,-1,200"}, `--links: "-1" is no rate`},
	} {
		_, err := run(t, append([]string{"swarm"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("swarm %v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
	o := swarmOptions{miners: 2, validators: 1, links: []netns.Rate{50 * netns.Mbit, 200 * netns.Mbit}}
	got := hostRates(o)
	want := []netns.Rate{200 * netns.Mbit, 50 * netns.Mbit, 200 * netns.Mbit, 200 * netns.Mbit, 200 * netns.Mbit}
	if len(got) != len(want) {
		t.Fatalf("hostRates %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("hostRates %v, want %v", got, want)
		}
	}
	s := &swarm{opts: o}
	if s.host(0) != 0 || s.host(1) != 1 || s.host(2) != 2 || s.host(-1) != 4 {
		t.Errorf("hosts: bootstrap %d, miners %d %d, validator %d; want 0, 1, 2 and 4 (3 is the late joiner's)",
			s.host(0), s.host(1), s.host(2), s.host(-1))
	}
}

// TestSwarmLinks runs `dtrain swarm --links 20,200,200 --validators 1`:
// every process in its own namespace, miner 1 behind a 20 Mbit/s link. The
// miners train together, the probes measure the slow link near its rate
// and the fast ones well above it, the validator weighs all three, and the
// namespaces are gone afterwards.
func TestSwarmLinks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	if err := netns.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	t.Setenv("DTRAIN_TEST_AS_MAIN", "1")
	dir := t.TempDir()
	cfg := tinySwarmConfig(t, dir)
	// The tiny model (807k parameters, 3.2 MB a vector) with epochs of 30
	// inner steps, a few seconds here: the slow miner moves its share of
	// the all-reduce in about a second, and a state in a few. (With the
	// test's usual 2 inner steps, an epoch is over before a state crosses
	// the slow link, and that miner falls behind for good.)
	b, err := os.ReadFile(cfg)
	must(t, err)
	must(t, os.WriteFile(cfg, []byte(strings.Replace(strings.Replace(string(b), "inner_steps = 2", "inner_steps = 30", 1),
		"round_seconds = 5", "round_seconds = 15", 1)), 0o644))
	out, err := run(t, "swarm", "--miners", "3", "--links", "20,200,200", "--validators", "1", "--verify", "norm",
		"--no-churn", "--minutes", "0.6", "--json", "--config", cfg, "--dir", filepath.Join(dir, "swarm"))
	if err != nil {
		t.Fatalf("swarm: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var head struct {
		Links []float64 `json:"links_mbit"`
	}
	must(t, json.Unmarshal([]byte(lines[0]), &head))
	if len(head.Links) != 3 || head.Links[0] != 20 || head.Links[1] != 200 || head.Links[2] != 200 {
		t.Errorf("header's links_mbit %v, want [20 200 200]", head.Links)
	}
	r := parseCheatRun(t, out)
	if r.summary.Epochs < 2 || len(r.weights) == 0 {
		t.Fatalf("%d epochs and %d weights lines, want 2 or more and some:\n%s", r.summary.Epochs, len(r.weights), out)
	}
	last := r.weights[len(r.weights)-1]
	if len(last.Miners) != 3 {
		t.Errorf("the validator's last weights hold %d miners, want 3: %+v", len(last.Miners), last.Miners)
	}
	slow, fast := r.summary.Miners[0], r.summary.Miners[1]
	var ws []string
	for _, w := range last.Miners {
		ws = append(ws, fmt.Sprintf("miner %d %.3f", w.Miner, w.Weight))
	}
	t.Logf("%d epochs; measured up/down Mbit/s: slow miner %.1f/%.1f, fast %.1f/%.1f; last weights %s", r.summary.Epochs,
		slow.UpMbps, slow.DownMbps, fast.UpMbps, fast.DownMbps, strings.Join(ws, ", "))
	// A probe measures goodput over QUIC, below the link's rate by the
	// headers; 20% above it would mean the shaping is not in the path.
	if !(slow.UpMbps > 0 && slow.UpMbps < 24 && slow.DownMbps > 0 && slow.DownMbps < 24) {
		t.Errorf("the 20 Mbit/s miner measured up %.1f, down %.1f Mbit/s", slow.UpMbps, slow.DownMbps)
	}
	if !(fast.UpMbps > 40 && fast.DownMbps > 40) {
		t.Errorf("the 200 Mbit/s miner measured up %.1f, down %.1f Mbit/s: want well above the slow one's 20", fast.UpMbps, fast.DownMbps)
	}
	b, err = exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "-swarm") { // the topology's names end "-swarm" or "-swarm-h<i>"
		t.Errorf("namespaces left after the run:\n%s", b)
	}
}
