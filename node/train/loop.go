package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dtrain-dev/dtrain/node/data"
)

// Run trains until max_steps, max_minutes, or ctx ends, and returns the
// final state. Stopping for any of these reasons writes a checkpoint first;
// a stop by ctx (SIGINT) returns a nil error with State.Step < max_steps.
// An error mid-step (a non-finite loss, bad data) returns without
// checkpointing the broken step: the previous checkpoint stays the latest.
func Run(ctx context.Context, o Options) (State, error) {
	lock, err := lockRun(o.Config.OutDir)
	if err != nil {
		return State{}, err
	}
	defer lock.Close()
	t, err := setup(o)
	if err != nil {
		return State{}, err
	}
	defer t.close()
	err = t.loop(ctx)
	return t.state, err
}

func (t *trainer) loop(ctx context.Context) error {
	lc := t.cfg.Loop
	begin := time.Now()
	elapsed0 := time.Duration(t.state.Elapsed * float64(time.Second))
	deadline := time.Time{}
	if lc.MaxMinutes > 0 {
		deadline = begin.Add(time.Duration(lc.MaxMinutes * float64(time.Minute)))
	}
	// The data stream has its own context: it must stop when the loop
	// returns, but a stop request (ctx) lets the current step finish.
	dctx, stopData := context.WithCancel(context.Background())
	defer stopData()
	batches := startBatches(dctx, t.opts.Train, t.order, lc.MicroBatch, t.state.Samples, 2*t.accum)

	if t.state.Step == 0 && t.opts.Val != nil {
		if err := t.eval(); err != nil {
			return err
		}
	}
	lastSaved := t.state.Step
	for t.state.Step < lc.MaxSteps {
		if err := ctx.Err(); err != nil {
			t.log.Info().Int("step", t.state.Step).Msg("stop requested")
			break
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			t.log.Info().Int("step", t.state.Step).Float64("max_minutes", lc.MaxMinutes).Msg("time limit reached")
			// The run ends here for now: give it its final held-out loss.
			if t.opts.Val != nil && t.lastEval != t.state.Step {
				if err := t.eval(); err != nil {
					return err
				}
			}
			break
		}
		ev, err := t.step(dctx, batches)
		if err != nil {
			return err
		}
		t.state.Elapsed = (elapsed0 + time.Since(begin)).Seconds()
		ev.Elapsed = elapsed0 + time.Since(begin)
		t.obs.Step(ev)
		done := t.state.Step == lc.MaxSteps
		if t.opts.Val != nil && (done || lc.EvalEvery > 0 && t.state.Step%lc.EvalEvery == 0) {
			if err := t.eval(); err != nil {
				return err
			}
		}
		if !done && lc.CheckpointEvery > 0 && t.state.Step%lc.CheckpointEvery == 0 {
			if err := t.save(); err != nil {
				return err
			}
			lastSaved = t.state.Step
		}
	}
	if t.state.Step != lastSaved || t.state.Step == 0 {
		return t.save()
	}
	return nil
}

// stepSeed makes the dropout masks of (step, micro-batch) a function of the
// run's seed alone, so a resumed run draws what an uninterrupted one would.
func stepSeed(seed uint64, step, micro int) uint64 {
	return data.SplitMix64(seed ^ data.SplitMix64(uint64(step)<<20|uint64(micro)))
}

// step runs one optimizer step: accum micro-batches of forward and
// backward, clipping, and AdamW at the scheduled learning rate.
func (t *trainer) step(ctx context.Context, batches *batchStream) (StepEvent, error) {
	start := time.Now()
	var wait time.Duration
	if err := t.model.ZeroGrad(); err != nil {
		return StepEvent{}, err
	}
	var loss float64
	var tokens int64
	for a := 0; a < t.accum; a++ {
		w := time.Now()
		b, err := batches.next(ctx)
		if err != nil {
			return StepEvent{}, fmt.Errorf("step %d: %w", t.state.Step+1, err)
		}
		wait += time.Since(w)
		if err := t.model.SeedDropout(stepSeed(t.cfg.Seed, t.state.Step, a)); err != nil {
			return StepEvent{}, err
		}
		l, _, err := t.model.TrainStep(b, 1/float64(t.accum))
		if err != nil {
			return StepEvent{}, fmt.Errorf("step %d: %w", t.state.Step+1, err)
		}
		if math.IsNaN(l) || math.IsInf(l, 0) {
			return StepEvent{}, fmt.Errorf("step %d: training loss is %v (try a lower optim.lr or optim.grad_clip)", t.state.Step+1, l)
		}
		loss += l / float64(t.accum)
		tokens += int64(b.B * b.T)
	}
	norm, err := t.model.ClipGradNorm(t.cfg.Optim.GradClip)
	if err != nil {
		return StepEvent{}, err
	}
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return StepEvent{}, fmt.Errorf("step %d: gradient norm is %v", t.state.Step+1, norm)
	}
	lr := t.sched.At(t.state.Step)
	if err := t.opt.Step(lr); err != nil {
		return StepEvent{}, err
	}
	t.state.Step++
	t.state.Samples += int64(t.accum * t.cfg.Loop.MicroBatch)
	t.state.Tokens += tokens
	took := time.Since(start)
	return StepEvent{
		Step: t.state.Step, MaxSteps: t.cfg.Loop.MaxSteps,
		Epoch: uint64(t.state.Samples / t.order.Windows()),
		Loss:  loss, LR: lr, GradNorm: norm,
		Tokens: t.state.Tokens, TokensPerSec: float64(tokens) / took.Seconds(),
		StepTime: took, DataWait: wait,
	}, nil
}

// eval measures held-out loss on the configured number of tokens.
func (t *trainer) eval() error {
	start := time.Now()
	n := int64(max(1, t.cfg.Loop.EvalTokens/t.cfg.Data.SeqLen))
	loss, count, err := HeldOutLoss(t.model, t.opts.Val, n, t.cfg.Loop.MicroBatch)
	if err != nil {
		return fmt.Errorf("evaluation at step %d: %w", t.state.Step, err)
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return errors.New("evaluation: held-out loss is not finite")
	}
	t.state.ValLoss, t.lastEval = loss, t.state.Step
	ev := EvalEvent{Step: t.state.Step, Tokens: t.state.Tokens, Loss: loss, Counted: count, Took: time.Since(start)}
	t.log.Info().Int("step", ev.Step).Int64("tokens", ev.Tokens).Float64("val_loss", loss).Int("val_tokens", count).Dur("took_ms", ev.Took).Msg("eval")
	t.obs.Eval(ev)
	return nil
}
