package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtrain-dev/dtrain/node/metrics"
)

// dtrain plot draws a trainer's log and a swarm's work dir (miners'
// losses across a restart, a validator's weights), and refuses what it
// cannot plot.
func TestPlot(t *testing.T) {
	dir := t.TempDir()
	write := func(path string, events ...map[string]any) {
		t.Helper()
		j, err := metrics.OpenJSONL(path)
		must(t, err)
		for _, e := range events {
			name := e["event"].(string)
			delete(e, "event")
			must(t, j.Write(name, e))
		}
		must(t, j.Close())
	}
	write(filepath.Join(dir, "train", "metrics.jsonl"),
		map[string]any{"event": "step", "tokens": 100, "loss": 6.0}, map[string]any{"event": "step", "tokens": 200, "loss": 5.0},
		map[string]any{"event": "eval", "tokens": 200, "val_loss": 5.5})
	for i, peer := range []string{"P1", "P2"} {
		write(filepath.Join(dir, "swarm", "miner-"+string(rune('1'+i)), "metrics.jsonl"),
			map[string]any{"event": "start", "peer": peer},
			map[string]any{"event": "epoch", "tokens": 1000, "loss": 6.0, "val_loss": 6.1},
			map[string]any{"event": "epoch", "tokens": 2000, "loss": 5.0, "val_loss": 5.2},
			map[string]any{"event": "start", "peer": peer}, // restarted: tokens count from 0 again
			map[string]any{"event": "epoch", "tokens": 1000, "loss": 4.5, "val_loss": 4.9})
	}
	write(filepath.Join(dir, "swarm", "validator-1", "weights.jsonl"),
		map[string]any{"event": "weights", "epoch": 0, "miners": []any{map[string]any{"miner": "P1", "weight": 0.5}, map[string]any{"miner": "P2", "weight": 0.5}}},
		map[string]any{"event": "weights", "epoch": 1, "miners": []any{map[string]any{"miner": "P1", "weight": 0.9}, map[string]any{"miner": "P2", "weight": 0.1}}})
	for _, tc := range []struct {
		in, want string
		height   int
	}{
		{filepath.Join(dir, "train"), "1 run(s), 2 loss and 1 held-out loss points", 400},
		{filepath.Join(dir, "train", "metrics.jsonl"), "1 run(s), 2 loss and 1 held-out loss points", 400},
		{filepath.Join(dir, "swarm"), "2 run(s), 6 loss and 6 held-out loss points, the weights of 2 miners", 800},
	} {
		out := filepath.Join(dir, "out.png")
		msg, err := run(t, "plot", tc.in, "--out", out)
		if err != nil || !strings.Contains(msg, tc.want) {
			t.Fatalf("plot %s: %q %v, want %q", tc.in, msg, err, tc.want)
		}
		f, err := os.Open(out)
		must(t, err)
		img, err := png.Decode(f)
		f.Close()
		must(t, err)
		if h := img.Bounds().Dy(); h < tc.height*9/10 || h > tc.height*11/10 {
			t.Errorf("plot %s: %d px high, want about %d (one panel or two)", tc.in, h, tc.height)
		}
	}
	runs, _, err := readPlotLogs(filepath.Join(dir, "swarm"))
	must(t, err)
	if last := runs[0].valLoss[2]; last.X != 3000 {
		t.Errorf("a restarted miner's tokens: %v, want 3000 (2000 before the restart, 1000 after)", last.X)
	}
	for _, args := range [][]string{
		{"plot", filepath.Join(dir, "nothing"), "--out", filepath.Join(dir, "x.png")},
		{"plot", filepath.Join(dir, "swarm", "validator-1", "weights.jsonl"), "--out", filepath.Join(dir, "x.png")},
		{"plot", filepath.Join(dir, "train")},
	} {
		if _, err := run(t, args...); err == nil {
			t.Errorf("dtrain %s: no error", strings.Join(args, " "))
		}
	}
}
