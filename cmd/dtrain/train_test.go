package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/train"
	"github.com/dtrain-dev/dtrain/torch"
)

// TestMain lets a test run this binary as the dtrain command, to kill it.
func TestMain(m *testing.M) {
	if os.Getenv("DTRAIN_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// dtrainProcess starts the test binary as `dtrain args...`.
func dtrainProcess(t *testing.T, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "DTRAIN_TEST_AS_MAIN=1", "DTRAIN_THREADS=1")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &logs
}

// tinyRun writes shards and a configuration for a model small enough to
// checkpoint many times a second.
func tinyRun(t *testing.T, maxSteps int) (cfgPath, out string) {
	t.Helper()
	dir := t.TempDir()
	toks := make([]int32, 6000)
	for i := range toks {
		toks[i] = int32((i*7)%97 + (i/13)%5)
	}
	must(t, data.WriteShard(filepath.Join(dir, "train_000000.bin"), toks[:5000]))
	must(t, data.WriteShard(filepath.Join(dir, "val_000000.bin"), toks[5000:]))
	out = filepath.Join(dir, "run")
	cfg := fmt.Sprintf(`out_dir = %q
[model]
n_layer = 2
n_head = 2
n_embd = 16
n_positions = 16
dropout = 0.1
[data]
train = %q
seq_len = 8
[optim]
warmup_steps = 2
[train]
max_steps = %d
batch_tokens = 32
micro_batch = 2
eval_every = 0
eval_tokens = 64
checkpoint_every = 1
keep_checkpoints = 2
log_every = 1
`, out, dir, maxSteps)
	cfgPath = filepath.Join(dir, "train.toml")
	must(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	return cfgPath, out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// stepLosses reads the loss of every step from a run's metrics.jsonl; a
// step trained twice (after a kill) must have had the same loss both times.
func stepLosses(t *testing.T, out string) map[int]float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	losses := map[int]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev struct {
			Event string   `json:"event"`
			Step  int      `json:"step"`
			Loss  *float64 `json:"loss"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Event != "step" || ev.Loss == nil {
			continue // a line torn by SIGKILL
		}
		// Exact: the same binary on the same CPU, at DTRAIN_THREADS=1, repeats
		// the step from checkpointed bits.
		if prev, ok := losses[ev.Step]; ok && prev != *ev.Loss {
			t.Errorf("step %d trained twice with losses %.9g and %.9g", ev.Step, prev, *ev.Loss)
		}
		losses[ev.Step] = *ev.Loss
	}
	return losses
}

// loadLatest loads everything a resume needs from a run's newest
// checkpoint and returns its step.
func loadLatest(t *testing.T, out string) int {
	t.Helper()
	dirs, err := train.Checkpoints(out)
	if err != nil {
		t.Fatal(err)
	}
	var st train.State
	must(t, torch.LoadTrainerState(dirs[0], &st))
	m, err := torch.LoadModel(dirs[0], torch.CPU)
	if err != nil {
		t.Fatalf("latest checkpoint %s does not load: %v", dirs[0], err)
	}
	defer m.Close()
	o, err := torch.NewAdamW(m, torch.DefaultAdamW)
	must(t, err)
	defer o.Close()
	if err := torch.LoadOptimizer(filepath.Join(dirs[0], torch.OptimizerFile), o); err != nil {
		t.Fatalf("latest checkpoint %s: %v", dirs[0], err)
	}
	if want := fmt.Sprintf("step_%08d", st.Step); filepath.Base(dirs[0]) != want {
		t.Fatalf("checkpoint %s holds the state of step %d", dirs[0], st.Step)
	}
	return st.Step
}

// latestStep is the step named by the run's latest pointer, or -1.
func latestStep(out string) int {
	b, err := os.ReadFile(filepath.Join(out, "checkpoints", "latest"))
	var step int
	if err != nil || len(b) == 0 {
		return -1
	}
	if _, err := fmt.Sscanf(string(b), "step_%d", &step); err != nil {
		return -1
	}
	return step
}

// TestSIGKILLDuringCheckpointsThenResume kills the trainer at random moments
// while it writes a checkpoint every step, checks each time that the newest
// checkpoint loads whole, and finally requires the killed-and-resumed run's
// losses to equal an uninterrupted run's, step for step.
func TestSIGKILLDuringCheckpointsThenResume(t *testing.T) {
	const steps = 60
	cfg, out := tinyRun(t, steps)
	rng := rand.New(rand.NewPCG(1, 2))
	prev, midWrite := 0, 0
	for kill := 0; kill < 10 && prev < steps-5; kill++ {
		cmd, logs := dtrainProcess(t, "train", "--config", cfg, "--resume")
		deadline := time.Now().Add(60 * time.Second)
		for latestStep(out) <= prev && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		must(t, cmd.Process.Signal(syscall.SIGKILL))
		cmd.Wait()
		if ents, _ := filepath.Glob(filepath.Join(out, "checkpoints", ".tmp-*")); len(ents) > 0 {
			midWrite++ // this kill interrupted a checkpoint being written
		}
		if latestStep(out) <= prev {
			t.Fatalf("kill %d: no new checkpoint after step %d; logs:\n%s", kill, prev, logs)
		}
		step := loadLatest(t, out)
		if step < prev {
			t.Fatalf("kill %d: latest checkpoint went back from step %d to %d", kill, prev, step)
		}
		prev = step
	}
	t.Logf("%d kills interrupted a checkpoint write; the previous checkpoint loaded every time", midWrite)
	cmd, logs := dtrainProcess(t, "train", "--config", cfg, "--resume")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("final resume: %v\n%s", err, logs)
	}
	if got := loadLatest(t, out); got != steps {
		t.Fatalf("finished at step %d, want %d", got, steps)
	}
	killed := stepLosses(t, out)

	cfg2, out2 := tinyRun(t, steps)
	cmd, logs = dtrainProcess(t, "train", "--config", cfg2)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, logs)
	}
	whole := stepLosses(t, out2)
	// Exact: both runs are this binary on this CPU at DTRAIN_THREADS=1.
	for s := 1; s <= steps; s++ {
		if killed[s] != whole[s] {
			t.Errorf("step %d: loss %.9g after kills and resumes, %.9g uninterrupted", s, killed[s], whole[s])
		}
	}
}

// TestSIGINTStopsWithACheckpoint: Ctrl-C ends the process cleanly, and the
// checkpoint it leaves is of the step it stopped at.
func TestSIGINTStopsWithACheckpoint(t *testing.T) {
	cfg, out := tinyRun(t, 100000)
	cmd, logs := dtrainProcess(t, "train", "--config", cfg)
	deadline := time.Now().Add(60 * time.Second)
	for latestStep(out) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	must(t, cmd.Process.Signal(os.Interrupt))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after SIGINT: %v\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("still running 30 s after SIGINT\n%s", logs)
	}
	step := loadLatest(t, out)
	losses := stepLosses(t, out)
	if _, ok := losses[step+1]; ok || step < 3 {
		t.Errorf("stopped at checkpoint %d but metrics show steps up to %d", step, len(losses))
	}
	if !strings.Contains(logs.String(), "--resume") {
		t.Errorf("the stop message does not say how to continue:\n%s", logs)
	}
}

// TestTrainThenGenerate is the user's path: train, then sample from the run
// directory; the same seed gives the same text, and bad flags are refused.
func TestTrainThenGenerate(t *testing.T) {
	cfg, out := tinyRun(t, 3)
	if _, err := run(t, "train", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	gen := func(args ...string) (string, error) {
		return run(t, append([]string{"generate", "--checkpoint", out, "--max-tokens", "12"}, args...)...)
	}
	a, err := gen("--prompt", "func main() {", "--seed", "5")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := gen("--prompt", "func main() {", "--seed", "5")
	if a != b || !strings.HasPrefix(a, "func main() {") || len(a) <= len("func main() {\n") {
		t.Errorf("generate gave %q then %q; want the same continuation of the prompt twice", a, b)
	}
	for _, bad := range [][]string{
		{"--temperature", "-1"}, {"--top-k", "-3"}, {"--top-p", "2"}, {"--max-tokens", "0"},
	} {
		if _, err := gen(bad...); err == nil {
			t.Errorf("generate %v accepted", bad)
		}
	}
	// eval takes the run directory too, and the prepared data's val shards.
	if out, err := run(t, "eval", "--checkpoint", out, "--data", filepath.Join(filepath.Dir(cfg), "val_000000.bin"), "--seq-len", "8"); err != nil || !strings.HasPrefix(out, "loss ") {
		t.Errorf("eval of the run directory: %v\n%s", err, out)
	}
	if _, err := run(t, "generate", "--checkpoint", t.TempDir()); err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Errorf("generate from an empty directory: %v", err)
	}
	if _, err := run(t, "train", "--config", cfg); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("training over a finished run without --resume: %v", err)
	}
}
