package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/metrics"
)

// A miner under a process manager that restarts it (pm2, systemd,
// Docker's restart policy), stopped every few seconds by SIGTERM or
// SIGKILL while another miner mines on: it never does an epoch twice, a
// restart loses no epoch it finished, and between restarts it keeps the
// swarm's model as a checkpoint that generate and eval read from its
// out_dir. The restarted miner comes back on the same port, as a miner
// with the default listen address does. The miner left alone never stops
// by itself.
func TestMinerRestartLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two miners for about 40 s")
	}
	cfg := tinyMinerFiles(t, "")
	dir := t.TempDir()
	outs := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}
	out, err := run(t, "roster", "key", filepath.Join(outs[0], "identity.key"))
	must(t, err)
	port := freeUDPPort(t)
	boot := fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1/p2p/%s", port, strings.TrimSpace(out))
	a, aLogs := dtrainProcess(t, "miner", "--config", cfg, "--out-dir", outs[0], "--listen", fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port))
	aDone := make(chan error, 1)
	go func() { aDone <- a.Wait() }()
	t.Cleanup(func() {
		_ = a.Process.Kill()
		<-aDone
	})
	time.Sleep(time.Second) // a listens before b dials it

	bPort := freeUDPPort(t)
	const cycles = 4
	for i := range cycles {
		b, bLogs := dtrainProcess(t, "miner", "--config", cfg, "--out-dir", outs[1], "--bootstrap", boot,
			"--listen", fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", bPort))
		time.Sleep(8 * time.Second)
		sig := syscall.SIGTERM
		if i%2 == 1 {
			sig = syscall.SIGKILL // no graceful stop: the checkpoint on disk is all there is
		}
		must(t, b.Process.Signal(sig))
		err := b.Wait()
		if sig == syscall.SIGTERM && err != nil {
			t.Fatalf("restart %d: the miner stopped by SIGTERM exited with %v\n%s", i, err, bLogs.String())
		}
		var ee *exec.ExitError
		if sig == syscall.SIGKILL && (err == nil || !asExit(err, &ee)) {
			t.Fatalf("restart %d: SIGKILL: %v", i, err)
		}
	}
	select {
	case err := <-aDone:
		t.Fatalf("the miner left alone stopped by itself: %v\n%s", err, aLogs.String())
	default:
	}

	evs, err := metrics.ReadJSONL(filepath.Join(outs[1], "metrics.jsonl"))
	must(t, err)
	starts, applied, last := 0, 0, -1
	averaged := make([]int, cycles) // per start, the epochs averaged with the other miner
	for _, e := range evs {
		f, _ := e["epoch"].(float64) // events without an epoch (probes) have none
		ep := int(f)
		switch e["event"] {
		case "start":
			starts++
			// What it finished before the restart is in the state it
			// starts from: it starts after its last applied epoch.
			if starts > 1 && (ep <= last || e["resumed"] != true) {
				t.Errorf("start %d at epoch %d (resumed %v) after finishing epoch %d: work lost", starts, ep, e["resumed"], last)
			}
		case "epoch":
			if e["dropped"] == true {
				continue
			}
			applied++
			if g, _ := e["group"].(float64); g >= 2 && starts > 0 && starts <= cycles {
				averaged[starts-1]++
			}
			if ep <= last {
				t.Errorf("epoch %d done again after epoch %d", ep, last)
			}
			last = ep
		}
	}
	// How soon a restarted miner averages again is timing (a round it left
	// is waited for until its deadline), so it is reported, not required.
	t.Logf("the restarted miner: %d starts, %d epochs applied, the last %d; averaged with the other after each start: %v",
		starts, applied, last, averaged)
	if starts != cycles || applied < cycles {
		t.Fatalf("%d starts and %d epochs applied in metrics.jsonl; want %d starts and epochs in each", starts, applied, cycles)
	}
	// The model it kept: generate and eval read the miner's out_dir and
	// its checkpoints/latest, eval at the model's own context.
	text, err := run(t, "generate", "--checkpoint", outs[1], "--prompt", "a", "--max-tokens", "4")
	if err != nil {
		t.Fatalf("generate --checkpoint <miner out_dir>: %v\n%s", err, text)
	}
	text, err = run(t, "eval", "--checkpoint", filepath.Join(outs[1], "checkpoints", "latest"), "--data", filepath.Join(filepath.Dir(cfg), "val_000000.bin"))
	if err != nil || !strings.Contains(text, "windows of 16") {
		t.Fatalf("eval --checkpoint <miner out_dir>/checkpoints/latest: %v\n%s", err, text)
	}
	st, err := os.Stat(filepath.Join(outs[1], "checkpoints"))
	must(t, err)
	ents, err := os.ReadDir(filepath.Join(outs[1], "checkpoints"))
	must(t, err)
	for _, e := range ents {
		if info, err := e.Info(); err == nil && e.IsDir() && info.Mode().Perm() != 0o755 {
			t.Errorf("%s is %v; want 0755 like %v", e.Name(), info.Mode().Perm(), st.Mode().Perm())
		}
	}
}

// asExit reports whether err is a process's exit status (not a failure to
// wait), and sets *ee.
func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}
