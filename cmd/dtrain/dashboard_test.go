package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/score"
	"github.com/dtrain-dev/dtrain/node/validator"
	"github.com/dtrain-dev/dtrain/node/wandb/wandbtest"
)

// chromium finds Debian's Chromium, which ./build.sh test installs.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: ./build.sh test installs Debian's chromium package")
	return ""
}

// getJSON GETs url into v.
func getJSON(url string, v any) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// The validator's dashboard in a real browser during a live swarm: the
// page loads without console errors, the miner table has one row per
// running miner, the loss chart one point per closed epoch, and a new
// epoch appears without a reload. It saves a screenshot
// (DTRAIN_SCREENSHOT names a copy to keep, as README's was made).
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a swarm and a browser")
	}
	exe := chromium(t)
	t.Setenv("DTRAIN_TEST_AS_MAIN", "1")
	dir := t.TempDir()
	cfg := tinySwarmConfig(t, dir)
	// Epochs of a second or two, so that the miners' reports (one a
	// second) carry each epoch's loss to the validator.
	b, err := os.ReadFile(cfg)
	must(t, err)
	must(t, os.WriteFile(cfg, []byte(strings.Replace(string(b), "inner_steps = 2\n", "inner_steps = 300\n", 1)), 0o644))
	addr, err := dashAddr("")
	must(t, err)
	base := "http://" + addr + "/"
	var wg sync.WaitGroup
	wg.Add(1)
	var out string
	var swarmErr error
	go func() {
		defer wg.Done()
		out, swarmErr = run(t, "swarm", "--miners", "3", "--validators", "1", "--verify", "norm", "--no-churn", "--minutes", "1",
			"--config", cfg, "--dir", filepath.Join(dir, "swarm"), "--http", addr)
	}()
	defer func() {
		wg.Wait()
		if swarmErr != nil {
			t.Errorf("swarm: %v\n%s", swarmErr, out)
		}
	}()
	type point struct {
		Epoch uint64   `json:"epoch"`
		Loss  *float64 `json:"loss"`
	}
	lossPoints := func() (int, error) {
		var ps []point
		if err := getJSON(base+"api/epochs", &ps); err != nil {
			return 0, err
		}
		n := 0
		for _, p := range ps {
			if p.Loss != nil {
				n++
			}
		}
		return n, nil
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if n, err := lossPoints(); err == nil && n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			var sum, eps any
			err1 := getJSON(base+"api/run", &sum)
			err2 := getJSON(base+"api/epochs", &eps)
			t.Logf("GET %s: %v, %v", base, err1, err2)
			vlog, _ := os.ReadFile(filepath.Join(dir, "swarm", "validator-1.log"))
			t.Fatalf("no two epochs with a loss on the dashboard in 90 s: run %v, epochs %v\nvalidator log:\n%s", sum, eps, firstLines(string(vlog), 12))
		}
		time.Sleep(300 * time.Millisecond)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(1400, 1000))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelT()
	var mu sync.Mutex
	var consoleErrs []string
	must(t, chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				consoleErrs = append(consoleErrs, fmt.Sprintf("console.error %v", e.Args))
			}
		case *runtime.EventExceptionThrown:
			consoleErrs = append(consoleErrs, "exception: "+e.ExceptionDetails.Text)
		}
	}))
	must(t, chromedp.Do(ctx, chromedp.Navigate(base), chromedp.WaitVisible("#miner-table")))
	count := func(sel string) int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
		must(t, err)
		return n
	}
	// Read by script in one step: the page swaps its sections in as
	// updates come, so a node found by one command may be gone by the next.
	text := func(sel string) string {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf("(document.querySelector(%q) || {}).textContent || ''", sel)))
		must(t, err)
		return strings.TrimSpace(s)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		end := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(end) {
				t.Fatalf("not within 30 s: %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("one live row per miner", func() bool { return count("tr.miner") == 3 && count("tr.miner.stale") == 0 })
	var dom int
	waitFor("one chart point per closed epoch", func() bool {
		before, err1 := lossPoints()
		dom = count("circle.loss")
		after, err2 := lossPoints()
		return err1 == nil && err2 == nil && before == dom && dom == after
	})
	t.Logf("%d miners, %d epochs on the chart", count("tr.miner"), dom)
	first, now := text("#epoch"), ""
	waitFor("a new epoch without a reload", func() bool {
		now = text("#epoch")
		return now != first
	})
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must(t, err)
	shot := filepath.Join(dir, "dashboard.png")
	must(t, os.WriteFile(shot, png, 0o644))
	if keep := os.Getenv("DTRAIN_SCREENSHOT"); keep != "" {
		must(t, os.WriteFile(keep, png, 0o644))
	}
	t.Logf("epoch %s → %s without a reload; screenshot %s (%d bytes)", first, now, shot, len(png))
	mu.Lock()
	defer mu.Unlock()
	if len(consoleErrs) > 0 {
		t.Errorf("console errors: %v", consoleErrs)
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// firstLines is the first n lines of s.
func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// A restarted validator's dashboard comes back with its history: the
// observer folds the metrics log it reopens into the board before any new
// event.
func TestValidatorDashboardKeepsHistory(t *testing.T) {
	cfg := config.DefaultValidator()
	cfg.OutDir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o, err := newValidatorObserver(ctx, cfg)
	must(t, err)
	o.write("start", map[string]any{"peer": "V"})
	for e := uint64(0); e < 3; e++ {
		o.event(validator.RoundEvent{Epoch: e, Group: 3, Contributors: 2, Expected: []string{"A", "B"}, Delivered: []string{"A"}, Took: time.Second})
		o.event(validator.EpochEvent{Epoch: e, Samples: 10, Loss: 5 - float64(e), Miners: []validator.MinerSeen{{Miner: "A", Epoch: e + 1, Loss: 4, Seen: time.Now()}}})
	}
	o.event(validator.VerdictEvent{Epoch: 2, Miner: "B", Verdict: "cheat", Reason: "zero update"})
	o.close()
	again, err := newValidatorObserver(ctx, cfg)
	must(t, err)
	defer again.close()
	s := again.board.Summary()
	if ps := again.board.Points(); len(ps) != 3 || *ps[2].Loss != 3 || s.Caught != 1 || s.Epoch != 2 {
		t.Fatalf("after a restart: %d points, summary %+v", len(ps), s)
	}
	ms := again.board.Miners()
	if len(ms) != 2 || ms[0].Joined != 3 || ms[1].Failed != 3 || ms[1].Verdict != "cheat" {
		t.Errorf("miners after a restart: %+v", ms)
	}
}

// With $WANDB_API_KEY set, a validator logs a W&B history row per epoch
// (loss, rounds, each miner's weight) to the API $WANDB_BASE_URL names,
// here a local stand-in, and closes the run at the end.
func TestValidatorLogsToWandb(t *testing.T) {
	srv := wandbtest.Env(t)
	cfg := config.DefaultValidator()
	cfg.OutDir = t.TempDir()
	o, err := newValidatorObserver(context.Background(), cfg)
	must(t, err)
	o.startWandb(cfg, "12D3KooWPeerABCDEFGH")
	if o.wandb == nil {
		t.Fatal("no W&B run with WANDB_API_KEY set")
	}
	for e := uint64(0); e < 3; e++ {
		o.event(validator.RoundEvent{Epoch: e, Took: time.Second})
		o.event(validator.EpochEvent{Epoch: e, Samples: 10, Loss: 5 - float64(e),
			Weights: score.Weights{Epoch: e, Miners: []score.MinerWeight{{Miner: "12D3KooWMinerAAAAAAAA", Weight: 1, Score: 0.9, Active: true}}}})
	}
	o.close()
	run := srv.Run("tester/dtrain/swarm-validator-ABCDEFGH")
	if run == nil || !run.Complete || len(run.History) != 3 || run.JobType != "validator" || run.Group != "swarm" {
		t.Fatalf("W&B run: %+v", run)
	}
	if r := run.History[2]; r["loss"] != 3.0 || r["weight/AAAAAAAA"] != 1.0 || r["round_s"] != 1.0 || r["epoch"] != 2.0 {
		t.Errorf("last row %v", r)
	}
}

// dtrain train logs a W&B row per step, its held-out losses and a summary
// when $WANDB_API_KEY is set, to the API $WANDB_BASE_URL names (a local
// stand-in), and marks the run finished.
func TestTrainLogsToWandb(t *testing.T) {
	srv := wandbtest.Env(t)
	cfg, _ := tinyRun(t, 6)
	if out, err := run(t, "--log-level", "warn", "train", "--config", cfg); err != nil {
		t.Fatalf("train: %v\n%s", err, out)
	}
	r := srv.Run("tester/dtrain/local-train")
	if r == nil || !r.Complete || r.JobType != "train" {
		t.Fatalf("W&B run: %+v", r)
	}
	steps, vals := 0, 0
	for _, row := range r.History {
		if _, ok := row["loss"]; ok {
			steps++
		}
		if _, ok := row["val_loss"]; ok {
			vals++
		}
	}
	if steps != 6 || vals < 1 || r.Summary["val_loss"] == nil || r.Config["max_steps"] == nil {
		t.Errorf("%d step rows, %d held-out rows, summary %v, config %v", steps, vals, r.Summary, r.Config)
	}
}
