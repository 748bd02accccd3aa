package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/metrics"
)

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// maxGroup is the largest group of the epochs in a miner's metrics.jsonl.
func maxGroup(t *testing.T, outDir string) int {
	t.Helper()
	evs, err := metrics.ReadJSONL(filepath.Join(outDir, "metrics.jsonl"))
	if err != nil {
		return 0
	}
	g := 0
	for _, e := range evs {
		if e["event"] == "epoch" {
			if n, ok := e["group"].(float64); ok {
				g = max(g, int(n))
			}
		}
	}
	return g
}

// A run whose owner signs its roster, tried as its operators would with
// the CLI: two members average together and a stranger is refused; the
// owner signs a roster that lists it and hands it to one member, the
// roster spreads, and the stranger, started again, averages with them.
func TestRosterRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three miners for about a minute")
	}
	cfg := tinyMinerFiles(t, "")
	dir := t.TempDir()
	ownerKey := filepath.Join(dir, "owner.key")
	out, err := run(t, "roster", "key", ownerKey)
	must(t, err)
	owner := strings.TrimSpace(out)
	outDirs, ids := make([]string, 3), make([]string, 3)
	for i := range outDirs {
		outDirs[i] = filepath.Join(dir, fmt.Sprintf("miner-%d", i))
		out, err := run(t, "roster", "key", filepath.Join(outDirs[i], "identity.key"))
		must(t, err)
		ids[i] = strings.TrimSpace(out)
	}
	b, err := os.ReadFile(cfg)
	must(t, err)
	must(t, os.WriteFile(cfg, append(b, fmt.Sprintf("owner = %q\n", owner)...), 0o644))
	sign := func(out string, members ...string) {
		t.Helper()
		args := []string{"roster", "sign", "--key", ownerKey, "--run", "metrics-test", "--out", out}
		for _, m := range members {
			args = append(args, "--member", m)
		}
		if msg, err := run(t, args...); err != nil {
			t.Fatalf("roster sign: %v\n%s", err, msg)
		}
	}
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		must(t, err)
		must(t, os.WriteFile(to, b, 0o644))
	}
	v1 := filepath.Join(dir, "roster.bin")
	sign(v1, ids[0], ids[1])
	for _, d := range outDirs {
		copyFile(v1, filepath.Join(d, "roster.bin"))
	}
	port := freeUDPPort(t)
	boot := fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1/p2p/%s", port, ids[0])
	start := func(i int) (wait func() error, logs *strings.Builder) {
		args := []string{"--log-level", "info", "miner", "--config", cfg, "--out-dir", outDirs[i]}
		if i == 0 {
			args = append(args, "--listen", fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port))
		} else {
			args = append(args, "--bootstrap", boot)
		}
		cmd, logs := dtrainProcess(t, args...)
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd.Wait, logs
	}
	waitFor := func(what string, within time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("not within %v: %s", within, what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	start(0)
	time.Sleep(time.Second) // miner 0 listens before the others dial it
	start(1)
	waitFor("members 0 and 1 average together", time.Minute, func() bool { return maxGroup(t, outDirs[1]) >= 2 })

	// The stranger cannot take part: its bootstrap peer refuses it.
	waitStranger, logs := start(2)
	exited := make(chan error, 1)
	go func() { exited <- waitStranger() }()
	select {
	case err := <-exited:
		t.Logf("the stranger exited: %v", err)
	case <-time.After(10 * time.Second):
		if g := maxGroup(t, outDirs[2]); g > 1 {
			t.Fatalf("the stranger averaged in a group of %d", g)
		}
	}
	if !strings.Contains(logs.String(), "not in the run's roster") {
		t.Errorf("the stranger was not told it is not in the roster:\n%s", logs.String())
	}

	// The owner signs version 2 with the stranger and hands it to
	// member 0 (and to the newcomer); member 1 learns it by gossip.
	sign(v1, ids...)
	copyFile(v1, filepath.Join(outDirs[0], "roster.bin"))
	copyFile(v1, filepath.Join(outDirs[2], "roster.bin"))
	waitFor("member 1 holds version 2", 30*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(outDirs[1], "roster.bin"))
		want, _ := os.ReadFile(v1)
		return string(b) == string(want)
	})
	must(t, os.Remove(filepath.Join(outDirs[2], "metrics.jsonl")))
	start(2)
	waitFor("the newcomer averages with the members", time.Minute, func() bool { return maxGroup(t, outDirs[2]) >= 2 })
}

// The roster commands as a new user meets them, bad input included.
func TestRosterCommands(t *testing.T) {
	dir := t.TempDir()
	key, other := filepath.Join(dir, "owner.key"), filepath.Join(dir, "other.key")
	out, err := run(t, "roster", "key", key)
	must(t, err)
	owner := strings.TrimSpace(out)
	if again, _ := run(t, "roster", "key", key); strings.TrimSpace(again) != owner {
		t.Fatalf("roster key printed %q, then %q for the same file", owner, again)
	}
	out, err = run(t, "roster", "key", other)
	must(t, err)
	stranger := strings.TrimSpace(out)
	file := filepath.Join(dir, "r.bin")
	for _, tc := range []struct {
		args []string
		want string // in the output or error; "" = success
	}{
		{[]string{"roster", "key"}, "usage: dtrain roster key FILE"},
		{[]string{"roster", "sign", "--key", filepath.Join(dir, "none.key"), "--run", "r", "--out", file}, "dtrain roster key FILE creates one"},
		{[]string{"roster", "sign", "--key", key, "--run", "r", "--member", "12D3Koo-typo", "--out", file}, `member "12D3Koo-typo" is not a peer id`},
		{[]string{"roster", "sign", "--key", key, "--run", "r", "--member", stranger, "--out", file}, "version 1, 1 members"},
		{[]string{"roster", "sign", "--key", key, "--run", "r", "--member", stranger, "--member", owner, "--out", file}, "version 2, 2 members"},
		{[]string{"roster", "sign", "--key", key, "--run", "r", "--version", "2", "--out", file}, "is not newer than"},
		{[]string{"roster", "sign", "--key", other, "--run", "r", "--out", file}, "holds no roster of run \"r\" signed by this key"},
		{[]string{"roster", "show", file}, "run r, version 2, 2 members, signature not checked"},
		{[]string{"roster", "show", "--owner", owner, file}, "signed by " + owner},
		{[]string{"roster", "show", "--owner", stranger, file}, "not signed by the owner"},
		{[]string{"roster", "show", key}, "not a roster"},
	} {
		out, err := run(t, tc.args...)
		if err != nil {
			out += err.Error()
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("dtrain %s: %q (err %v), want %q", strings.Join(tc.args, " "), out, err, tc.want)
		}
	}
}
