package main

import (
	"context"
	"errors"
	"os"

	"github.com/rs/zerolog/log"

	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/dash"
	"github.com/dtrain-dev/dtrain/node/metrics"
	"github.com/dtrain-dev/dtrain/node/validator"
)

// validatorObserver shows a validator to the people and programs watching
// it: its events go to metrics.jsonl, Prometheus and its dashboard, which
// metrics.addr serves beside /metrics.
type validatorObserver struct {
	events *metrics.JSONL // nil when metrics.jsonl is ""
	prom   *metrics.Validator
	board  *dash.Board
}

// newValidatorObserver opens the validator's metrics log, folds the
// history it holds into the dashboard (a restarted validator shows the
// run from where its log begins), and serves metrics.addr.
func newValidatorObserver(ctx context.Context, cfg config.Validator) (*validatorObserver, error) {
	o := &validatorObserver{board: openBoard("validator", cfg.OutDir, cfg.Metrics.JSONL)}
	if p := cfg.Metrics.JSONL; p != "" {
		var err error
		if o.events, err = metrics.OpenJSONL(metricsPath(cfg.OutDir, p)); err != nil {
			return nil, err
		}
	}
	if cfg.Metrics.Addr != "" {
		o.prom = metrics.NewValidator(cfg.RunID)
		addr, err := metrics.Serve(ctx, cfg.Metrics.Addr, o.prom.Registry(), dash.Handler(o.board))
		if err != nil {
			o.close()
			return nil, err
		}
		log.Info().Str("url", "http://"+addr+"/").Msg("serving the dashboard (and Prometheus metrics on /metrics)")
	}
	return o, nil
}

// openBoard returns a role's dashboard with the history of its metrics
// log (path, relative to outDir; "" = none) folded in.
func openBoard(role, outDir, path string) *dash.Board {
	b := dash.NewBoard(role)
	if path == "" {
		return b
	}
	recs, err := metrics.ReadJSONL(metricsPath(outDir, path))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn().Err(err).Msg("the dashboard starts without the metrics log's history")
	}
	for _, r := range recs {
		b.Apply(r)
	}
	return b
}

// event takes one of the validator's events (validator.Options.Events).
func (o *validatorObserver) event(ev validator.Event) {
	o.write(ev.Kind(), ev.Fields())
	switch e := ev.(type) {
	case validator.EpochEvent:
		active := 0
		for _, m := range e.Weights.Miners {
			if m.Active {
				active++
			}
		}
		o.prom.ObserveEpoch(e.Epoch, len(e.Weights.Miners), active, e.Samples, e.Loss)
	case validator.RoundEvent:
		o.prom.ObserveRound(e.Err != "")
	case validator.VerdictEvent:
		o.prom.ObserveVerdict(e.Verdict)
	case validator.ProbeEvent:
		o.prom.ObserveProbe(e.Failed)
	}
}

// write appends an event to metrics.jsonl and hands it to the dashboard
// as the log reads back; a failing log is logged, never a reason to stop.
func (o *validatorObserver) write(event string, fields map[string]any) {
	if rec, err := metrics.Record(event, fields); err == nil {
		o.board.Apply(rec)
	}
	if o.events == nil {
		return
	}
	if err := o.events.Write(event, fields); err != nil {
		log.Warn().Err(err).Str("file", o.events.Path()).Msg("metrics file")
	}
}

func (o *validatorObserver) close() {
	if o.events != nil {
		o.events.Close()
	}
}
