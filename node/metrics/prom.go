package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog/log"
)

// Training holds a training run's Prometheus metrics, all named dtrain_*
// and labelled run="<run_id>", in a registry of its own (with the Go
// runtime and process collectors) rather than the global default, so that
// tests and several runs in one process do not collide.
//
// A nil *Training accepts every observation and records nothing, so code
// can report unconditionally when metrics are off.
type Training struct {
	reg *prometheus.Registry

	trainLoss    prometheus.Gauge
	valLoss      prometheus.Gauge
	lr           prometheus.Gauge
	step         prometheus.Gauge
	tokens       prometheus.Counter
	tokensPerSec prometheus.Gauge
	gradNorm     prometheus.Gauge
	stepSeconds  prometheus.Histogram
	dataWait     prometheus.Counter
	checkpoints  prometheus.Counter
	ckptSeconds  prometheus.Histogram
}

// newRegistry is a registry with the Go runtime and process collectors,
// and the label run="<runID>" that a run's metrics carry.
func newRegistry(runID string) (*prometheus.Registry, prometheus.Labels) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
	)
	// Label values must be UTF-8; run_id is validated to be ASCII, but
	// bad input must not make registration panic.
	return reg, prometheus.Labels{"run": strings.ToValidUTF8(runID, "\uFFFD")}
}

// NewTraining creates the metrics of the run runID in a new registry.
func NewTraining(runID string) *Training {
	reg, run := newRegistry(runID)
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: run})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: run})
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, ConstLabels: run, Buckets: buckets})
	}
	t := &Training{
		reg:          reg,
		trainLoss:    gauge("dtrain_train_loss", "Training loss (mean cross-entropy, nats/token) of the last optimizer step."),
		valLoss:      gauge("dtrain_val_loss", "Held-out loss (mean cross-entropy, nats/token) of the last evaluation."),
		lr:           gauge("dtrain_learning_rate", "Learning rate of the last optimizer step."),
		step:         gauge("dtrain_step", "Optimizer steps completed in the run, resumed steps included."),
		tokens:       counter("dtrain_tokens_trained_total", "Tokens trained on by this process."),
		tokensPerSec: gauge("dtrain_tokens_per_second", "Training throughput of the last optimizer step."),
		gradNorm:     gauge("dtrain_grad_norm", "Global gradient norm of the last optimizer step, before clipping."),
		// 10 ms to about 5.5 min: a small CPU model to a big GPU step.
		stepSeconds: histogram("dtrain_step_seconds", "Wall time of one optimizer step.", prometheus.ExponentialBuckets(0.01, 2, 16)),
		dataWait:    counter("dtrain_data_wait_seconds_total", "Time the training loop waited for data."),
		checkpoints: counter("dtrain_checkpoints_written_total", "Checkpoints written by this process."),
		// 50 ms to about 14 min.
		ckptSeconds: histogram("dtrain_checkpoint_seconds", "Wall time of writing one checkpoint.", prometheus.ExponentialBuckets(0.05, 2, 15)),
	}
	reg.MustRegister(t.trainLoss, t.valLoss, t.lr, t.step, t.tokens, t.tokensPerSec,
		t.gradNorm, t.stepSeconds, t.dataWait, t.checkpoints, t.ckptSeconds)
	return t
}

// Registry is the registry that holds the metrics, for Serve.
func (t *Training) Registry() *prometheus.Registry {
	if t == nil {
		return nil
	}
	return t.reg
}

// StepStats is what one optimizer step reports.
type StepStats struct {
	Step     int           // optimizer steps completed, this one included
	Loss     float64       // training loss of the step
	LR       float64       // learning rate the step used
	GradNorm float64       // global gradient norm before clipping
	Tokens   int64         // tokens trained on in this step
	Took     time.Duration // wall time of the step, data wait included
	DataWait time.Duration // part of Took spent waiting for data
}

// ObserveStep records one optimizer step. Tokens per second is
// Tokens/Took. Negative counts and durations, which only a bug produces,
// are not added to counters (Prometheus counters only go up).
func (t *Training) ObserveStep(s StepStats) {
	if t == nil {
		return
	}
	t.step.Set(float64(s.Step))
	t.trainLoss.Set(s.Loss)
	t.lr.Set(s.LR)
	t.gradNorm.Set(s.GradNorm)
	if s.Tokens > 0 {
		t.tokens.Add(float64(s.Tokens))
	}
	if s.Took > 0 {
		t.stepSeconds.Observe(s.Took.Seconds())
		t.tokensPerSec.Set(float64(max(s.Tokens, 0)) / s.Took.Seconds())
	}
	if s.DataWait > 0 {
		t.dataWait.Add(s.DataWait.Seconds())
	}
}

// SetStep sets the step gauge without a step's other numbers, e.g. to the
// step a resumed run starts from.
func (t *Training) SetStep(step int) {
	if t != nil {
		t.step.Set(float64(step))
	}
}

// ObserveEval records the held-out loss of an evaluation.
func (t *Training) ObserveEval(valLoss float64) {
	if t != nil {
		t.valLoss.Set(valLoss)
	}
}

// ObserveCheckpoint records a checkpoint written in took.
func (t *Training) ObserveCheckpoint(took time.Duration) {
	if t == nil {
		return
	}
	t.checkpoints.Inc()
	if took >= 0 && !math.IsInf(took.Seconds(), 0) {
		t.ckptSeconds.Observe(took.Seconds())
	}
}

// Serve serves reg's metrics on http://addr/metrics, "ok" on /healthz and,
// when more is not nil, every other path with more (a dashboard), until
// ctx ends. It listens before it returns, so a bad or busy address is
// its error, and returns the address it listens on (the port chosen when
// addr's port is 0). The server's goroutines end soon after ctx does.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, more http.Handler) (string, error) {
	if reg == nil {
		return "", errors.New("serve metrics: nil registry")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("serve metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	if more != nil {
		mux.Handle("/", more)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	bound := ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("addr", bound).Msg("metrics server stopped")
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		// Let a scrape in flight finish, but not for long.
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		<-done
	}()
	return bound, nil
}
