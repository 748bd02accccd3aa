package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/log"
	"github.com/schollz/progressbar/v3"

	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/metrics"
	"github.com/dtrain-dev/dtrain/node/train"
	"github.com/dtrain-dev/dtrain/node/wandb"
	"github.com/dtrain-dev/dtrain/torch"
)

// trainObserver shows a run to the people and programs watching it: a
// progress bar on a terminal, zerolog lines, the JSONL metrics file and
// the dashboard, Prometheus, and W&B.
type trainObserver struct {
	roleLog
	cfg     config.Train
	bar     *progressbar.ProgressBar // nil unless stderr is a terminal
	restore zerolog.Logger
	rate    float64           // tokens/s, smoothed
	prom    *metrics.Training // nil when metrics.addr is ""
	wandb   *wandb.Run        // nil without $WANDB_API_KEY
	tokens  int64             // trained tokens at the previous step
}

func newTrainObserver(ctx context.Context, cfg config.Train, ds *data.Dataset) (*trainObserver, error) {
	l, err := openRoleLog("train", cfg.OutDir, cfg.Metrics.JSONL)
	if err != nil {
		return nil, err
	}
	o := &trainObserver{roleLog: l, cfg: cfg, restore: log.Logger, tokens: -1}
	md := cfg.Model
	var params int64
	if md.Init == "" {
		params = torch.NumParams(torch.NewConfig(md.NLayer, md.NHead, md.NEmbd, md.NPositions, md.VocabSize))
	}
	o.board.SetInfo(cfg.RunID, "", params, int64(cfg.Data.SeqLen))
	if cfg.Metrics.Addr != "" {
		o.prom = metrics.NewTraining(cfg.RunID)
		if err := o.serve(ctx, cfg.Metrics.Addr, o.prom.Registry()); err != nil {
			o.close()
			return nil, err
		}
	}
	o.write("start", map[string]any{"run_id": cfg.RunID, "train_windows": ds.Len(), "train_tokens": ds.Tokens(), "seq_len": cfg.Data.SeqLen})
	o.wandb = openWandb(cfg.Wandb, cfg.RunID, "train", "", map[string]any{"run_id": cfg.RunID, "params": params,
		"n_layer": md.NLayer, "n_head": md.NHead, "n_embd": md.NEmbd, "n_positions": md.NPositions, "vocab_size": md.VocabSize,
		"seq_len": cfg.Data.SeqLen, "lr": cfg.Optim.LR, "min_lr": cfg.Optim.MinLR, "warmup_steps": cfg.Optim.WarmupSteps,
		"weight_decay": cfg.Optim.WeightDecay, "batch_tokens": cfg.Loop.BatchTokens, "max_steps": cfg.Loop.MaxSteps,
		"precision": cfg.Precision, "data": cfg.Data.Train})
	if isTerminal(os.Stderr) && zerolog.GlobalLevel() <= zerolog.InfoLevel {
		o.bar = progressbar.NewOptions(cfg.Loop.MaxSteps,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(false),
		)
		// Log lines go above the bar: clear it, write, draw it again.
		log.Logger = log.Output(zerolog.ConsoleWriter{Out: barWriter{o.bar}, TimeFormat: "15:04:05"})
	}
	return o, nil
}

// barWriter writes log lines above a progress bar.
type barWriter struct{ bar *progressbar.ProgressBar }

func (w barWriter) Write(p []byte) (int, error) {
	w.bar.Clear()
	n, err := os.Stderr.Write(p)
	w.bar.RenderBlank()
	return n, err
}

var _ io.Writer = barWriter{}

// Step takes an optimizer step's event: Prometheus, metrics.jsonl and
// the dashboard, the progress bar and a log line every log_every steps.
func (o *trainObserver) Step(e train.StepEvent) {
	stepTokens := int64(0)
	if o.tokens >= 0 {
		stepTokens = e.Tokens - o.tokens
	} else {
		stepTokens = int64(e.TokensPerSec * e.StepTime.Seconds())
	}
	o.tokens = e.Tokens
	o.prom.ObserveStep(metrics.StepStats{Step: e.Step, Loss: e.Loss, LR: e.LR, GradNorm: e.GradNorm, Tokens: stepTokens, Took: e.StepTime, DataWait: e.DataWait})
	o.write("step", map[string]any{
		"step": e.Step, "epoch": e.Epoch, "loss": e.Loss, "lr": e.LR, "grad_norm": e.GradNorm, "tokens": e.Tokens,
		"tokens_per_s": e.TokensPerSec, "step_s": e.StepTime.Seconds(), "data_wait_s": e.DataWait.Seconds(), "elapsed_s": e.Elapsed.Seconds(),
	})
	if o.wandb != nil {
		o.wandb.Log(map[string]any{"step": e.Step, "loss": e.Loss, "lr": e.LR, "grad_norm": e.GradNorm, "tokens": e.Tokens,
			"tokens_per_s": e.TokensPerSec})
	}
	if o.rate == 0 {
		o.rate = e.TokensPerSec
	} else {
		o.rate = 0.9*o.rate + 0.1*e.TokensPerSec
	}
	if o.bar != nil {
		eta := time.Duration(float64(e.MaxSteps-e.Step) * float64(stepTokens) / o.rate * float64(time.Second))
		o.bar.Describe(fmt.Sprintf("step %d/%d · loss %.3f · %s tok/s · ETA %s", e.Step, e.MaxSteps, e.Loss, humanRate(o.rate), eta.Round(time.Second)))
		o.bar.Set(e.Step)
	}
	if e.Step%o.cfg.Loop.LogEvery == 0 || e.Step == e.MaxSteps {
		lvl := zerolog.InfoLevel
		if o.bar != nil {
			lvl = zerolog.DebugLevel // the bar shows it
		}
		log.WithLevel(lvl).Int("step", e.Step).Float64("loss", round(e.Loss, 4)).Float64("lr", e.LR).
			Float64("grad_norm", round(e.GradNorm, 4)).Int64("tokens", e.Tokens).Float64("tok_s", round(e.TokensPerSec, 1)).
			Dur("data_wait_ms", e.DataWait).Msg("train")
	}
}

func (o *trainObserver) Eval(e train.EvalEvent) {
	o.prom.ObserveEval(e.Loss)
	o.write("eval", map[string]any{"step": e.Step, "tokens": e.Tokens, "val_loss": e.Loss, "val_tokens": e.Counted, "took_s": e.Took.Seconds()})
	if o.wandb != nil {
		o.wandb.Log(map[string]any{"step": e.Step, "tokens": e.Tokens, "val_loss": e.Loss})
		o.wandb.Summary(map[string]any{"step": e.Step, "tokens": e.Tokens, "val_loss": e.Loss})
	}
}

func (o *trainObserver) Checkpoint(e train.CheckpointEvent) {
	o.prom.ObserveCheckpoint(e.Took)
	o.write("checkpoint", map[string]any{"step": e.Step, "dir": e.Dir, "took_s": e.Took.Seconds()})
}

// finish takes the bar down so the last lines print below it.
func (o *trainObserver) finish() {
	if o.bar != nil {
		o.bar.Clear()
		fmt.Fprintln(os.Stderr)
		log.Logger = o.restore
		o.bar = nil
	}
}

func (o *trainObserver) close() {
	o.finish()
	closeWandb(o.wandb)
	o.roleLog.close()
}

func humanRate(r float64) string {
	if r >= 1000 {
		return fmt.Sprintf("%.1fk", r/1000)
	}
	return fmt.Sprintf("%.0f", r)
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
