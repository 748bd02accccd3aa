package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog/log"

	"github.com/dtrain-dev/dtrain/node/dash"
	"github.com/dtrain-dev/dtrain/node/metrics"
)

// roleLog is where a miner's or validator's events go: its metrics.jsonl
// and its dashboard, which starts with the history that log holds (a
// restarted peer's page shows the run from where its log begins).
type roleLog struct {
	events *metrics.JSONL // nil when metrics.jsonl is ""
	board  *dash.Board
}

// openRoleLog folds the log at jsonl (relative to outDir; "" = none) into
// a new board of role and opens the log for appending.
func openRoleLog(role, outDir, jsonl string) (roleLog, error) {
	l := roleLog{board: dash.NewBoard(role)}
	if jsonl == "" {
		return l, nil
	}
	path := metricsPath(outDir, jsonl)
	recs, err := metrics.ReadJSONL(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn().Err(err).Msg("the dashboard starts without the metrics log's history")
	}
	for _, r := range recs {
		l.board.Apply(r)
	}
	l.events, err = metrics.OpenJSONL(path)
	return l, err
}

// serve serves reg's Prometheus metrics and the dashboard on addr.
func (l roleLog) serve(ctx context.Context, addr string, reg *prometheus.Registry) error {
	bound, err := metrics.Serve(ctx, addr, reg, dash.Handler(l.board))
	if err != nil {
		return fmt.Errorf("metrics.addr: %w", err)
	}
	log.Info().Str("url", "http://"+bound+"/").Msg("serving the dashboard (and Prometheus metrics on /metrics)")
	return nil
}

// write appends an event to metrics.jsonl and hands it to the dashboard
// as the log reads back; a failing log is logged, never a reason to stop.
func (l roleLog) write(event string, fields map[string]any) {
	if rec, err := metrics.Record(event, fields); err == nil {
		l.board.Apply(rec)
	}
	if l.events == nil {
		return
	}
	if err := l.events.Write(event, fields); err != nil {
		log.Warn().Err(err).Str("file", l.events.Path()).Msg("metrics file")
	}
}

func (l roleLog) close() {
	if l.events != nil {
		l.events.Close()
	}
}
