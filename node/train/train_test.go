package train

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/data/datatest"
)

// tinyConfig is a run small enough for unit tests: GPT-2's vocabulary (the
// trainer insists on it) over a 2-layer, 16-wide model.
func tinyConfig(out string) config.Train {
	c := config.DefaultTrain()
	c.OutDir = out
	c.Model = config.Model{NLayer: 2, NHead: 2, NEmbd: 16, NPositions: 16, VocabSize: data.VocabSize, Dropout: 0.1}
	c.Data.SeqLen = 8
	c.Optim.WarmupSteps = 2
	c.Loop = config.Loop{MaxSteps: 6, BatchTokens: 32, MicroBatch: 2, EvalEvery: 2, EvalTokens: 32, CheckpointEvery: 2, KeepCheckpoints: 2, LogEvery: 1}
	return c
}

// tinyData writes a train and a val shard of a repetitive token stream.
func tinyData(t *testing.T) (train, val *data.Dataset) {
	return datatest.Split(t, 3500, 500, 8)
}

// recorder keeps the losses per step and can stop the run after a step.
type recorder struct {
	NopObserver
	losses map[int]float64
	evals  map[int]float64
	stopAt int
	stop   context.CancelFunc
	saved  []int
}

func newRecorder() *recorder { return &recorder{losses: map[int]float64{}, evals: map[int]float64{}} }

func (r *recorder) Step(e StepEvent) {
	r.losses[e.Step] = e.Loss
	if e.Step == r.stopAt && r.stop != nil {
		r.stop()
	}
}
func (r *recorder) Eval(e EvalEvent)             { r.evals[e.Step] = e.Loss }
func (r *recorder) Checkpoint(e CheckpointEvent) { r.saved = append(r.saved, e.Step) }

func run(t *testing.T, ctx context.Context, c config.Train, resume bool, tr, val *data.Dataset, r *recorder) State {
	t.Helper()
	st, err := Run(ctx, Options{Config: c, Resume: resume, Train: tr, Val: val, Log: zerolog.Nop(), Observer: r})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestResumeFollowsTheUninterruptedTrajectory(t *testing.T) {
	tr, val := tinyData(t)
	whole := newRecorder()
	run(t, context.Background(), tinyConfig(t.TempDir()), false, tr, val, whole)

	out := t.TempDir()
	first := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	first.stopAt, first.stop = 3, cancel // a SIGINT after step 3
	st := run(t, ctx, tinyConfig(out), false, tr, val, first)
	if st.Step != 3 || len(first.saved) == 0 || first.saved[len(first.saved)-1] != 3 {
		t.Fatalf("interrupted run stopped at step %d having saved %v, want a checkpoint of step 3", st.Step, first.saved)
	}
	second := newRecorder()
	st = run(t, context.Background(), tinyConfig(out), true, tr, val, second)
	if st.Step != 6 {
		t.Fatalf("resumed run ended at step %d, want 6", st.Step)
	}
	// Exact: the resumed run repeats the uninterrupted one's computation
	// (same process, shapes, threads and precision) from checkpointed bits.
	for step := 1; step <= 6; step++ {
		got, ok := first.losses[step]
		if !ok {
			got = second.losses[step]
		}
		if got != whole.losses[step] {
			t.Errorf("step %d: loss %.9g interrupted+resumed, %.9g uninterrupted", step, got, whole.losses[step])
		}
	}
	if second.evals[6] != whole.evals[6] {
		t.Errorf("final held-out loss %.9g after resume, %.9g uninterrupted", second.evals[6], whole.evals[6])
	}
	if whole.losses[6] >= whole.losses[1] {
		t.Errorf("loss did not fall: %.4g at step 1, %.4g at step 6", whole.losses[1], whole.losses[6])
	}
}

func TestCheckpointsArePrunedAndLatestIsNewest(t *testing.T) {
	tr, val := tinyData(t)
	out := t.TempDir()
	c := tinyConfig(out)
	c.Loop.CheckpointEvery = 1
	run(t, context.Background(), c, false, tr, val, newRecorder())
	dirs, err := Checkpoints(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 2 || filepath.Base(dirs[0]) != "step_00000006" || filepath.Base(dirs[1]) != "step_00000005" {
		t.Fatalf("checkpoints %v, want step 6 then step 5", dirs)
	}
	ents, _ := os.ReadDir(filepath.Join(out, "checkpoints"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

func TestResumeSkipsABrokenCheckpoint(t *testing.T) {
	tr, val := tinyData(t)
	out := t.TempDir()
	c := tinyConfig(out)
	c.Loop.MaxSteps, c.Loop.CheckpointEvery = 4, 2
	run(t, context.Background(), c, false, tr, val, newRecorder())
	// Damage the newest checkpoint (as a disk error might): resume falls
	// back to step 2 and trains steps 3 and 4 again.
	if err := os.Truncate(filepath.Join(CheckpointDir(out, 4), "model.safetensors"), 100); err != nil {
		t.Fatal(err)
	}
	c.Loop.MaxSteps = 5
	r := newRecorder()
	st := run(t, context.Background(), c, true, tr, val, r)
	if _, ok := r.losses[3]; !ok || st.Step != 5 {
		t.Errorf("after falling back to step 2, trained steps %v ending at %d", r.losses, st.Step)
	}
}

func TestRefusals(t *testing.T) {
	tr, val := tinyData(t)
	out := t.TempDir()
	c := tinyConfig(out)
	c.Loop.MaxSteps = 1
	run(t, context.Background(), c, false, tr, val, newRecorder())
	_, err := Run(context.Background(), Options{Config: c, Train: tr, Val: val, Log: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("starting over an existing run: %v, want a hint to pass --resume", err)
	}
	other := c
	other.Seed++
	if _, err := Run(context.Background(), Options{Config: other, Resume: true, Train: tr, Val: val, Log: zerolog.Nop()}); err == nil {
		t.Error("resumed a run with another seed")
	}
	lock, err := lockRun(out)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	_, err = Run(context.Background(), Options{Config: c, Resume: true, Train: tr, Log: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second trainer on one out_dir: %v", err)
	}
	small := tinyConfig(t.TempDir())
	small.Model.VocabSize = 100
	if _, err := Run(context.Background(), Options{Config: small, Train: tr, Log: zerolog.Nop()}); err == nil {
		t.Error("trained a model whose vocabulary is smaller than the tokenizer's")
	}
	if _, err := Checkpoints(t.TempDir()); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("empty run dir: %v, want ErrNoCheckpoint", err)
	}
}
