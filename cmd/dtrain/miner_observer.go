package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/rs/zerolog/log"

	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/dash"
	"github.com/dtrain-dev/dtrain/node/metrics"
	"github.com/dtrain-dev/dtrain/node/miner"
)

// minerObserver shows a miner to the programs watching it: its typed
// events go to the JSONL metrics file (metrics.jsonl) and Prometheus
// (metrics.addr). dtrain swarm reads the file.
type minerObserver struct {
	seqLen int
	events *metrics.JSONL // nil when metrics.jsonl is ""
	prom   *metrics.Miner // nil when metrics.addr is ""
	board  *dash.Board
}

func newMinerObserver(ctx context.Context, cfg config.Miner) (*minerObserver, error) {
	o := &minerObserver{seqLen: cfg.Data.SeqLen, board: openBoard("miner", cfg.OutDir, cfg.Metrics.JSONL)}
	o.board.SetInfo(cfg.RunID, "", 0, int64(cfg.Data.SeqLen))
	if p := cfg.Metrics.JSONL; p != "" {
		var err error
		if o.events, err = metrics.OpenJSONL(metricsPath(cfg.OutDir, p)); err != nil {
			return nil, err
		}
	}
	if cfg.Metrics.Addr != "" {
		o.prom = metrics.NewMiner(cfg.RunID)
		addr, err := metrics.Serve(ctx, cfg.Metrics.Addr, o.prom.Registry(), dash.Handler(o.board))
		if err != nil {
			o.close()
			return nil, fmt.Errorf("metrics.addr: %w", err)
		}
		log.Info().Str("url", "http://"+addr+"/").Msg("serving the dashboard (and Prometheus metrics on /metrics)")
	}
	return o, nil
}

// metricsPath is where metrics.jsonl goes: path, relative to outDir unless
// absolute.
func metricsPath(outDir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(outDir, path)
}

// event takes one of the miner's events (miner.Options.Events).
func (o *minerObserver) event(ev miner.Event) {
	o.write(ev.Kind(), ev.Fields())
	switch e := ev.(type) {
	case miner.StartEvent:
		o.prom.SetState(e.Epoch, e.Peers)
	case miner.EpochEvent:
		me := metrics.MinerEpoch{Next: e.Epoch + 1, Outcome: metrics.OutcomeAveraged, Loss: e.Loss, ValLoss: e.ValLoss,
			Tokens: e.Samples * int64(o.seqLen), TokensPerSec: e.TokensPerSec, Peers: e.Peers}
		switch {
		case e.Dropped:
			me.Next, me.Outcome = e.Epoch, metrics.OutcomeDropped
		case e.Alone != "":
			me.Outcome = metrics.OutcomeAlone
		}
		o.prom.ObserveEpoch(me)
	case miner.RoundEvent:
		o.prom.ObserveRound(e.Took, e.BytesSent, e.BytesReceived, e.Err != "")
	case miner.LoadEvent:
		o.prom.ObserveLoad(e.Epoch, e.Err != "")
	case miner.AnnounceEvent:
		// Mbit/s to bytes/s.
		o.prom.ObserveLinkRate("up", e.UpMbps*1e6/8)
		o.prom.ObserveLinkRate("down", e.DownMbps*1e6/8)
	}
}

// failed records an error that ended the miner before it ran (after it
// ran, its own stop event says why it stopped).
func (o *minerObserver) failed(err error) {
	o.write("stop", map[string]any{"reason": "error", "error": err.Error()})
}

// write appends an event to metrics.jsonl; a failing metrics file is
// logged, never a reason to stop mining.
func (o *minerObserver) write(event string, fields map[string]any) {
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

func (o *minerObserver) close() {
	if o.events != nil {
		o.events.Close()
	}
}
