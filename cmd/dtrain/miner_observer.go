package main

import (
	"context"
	"path/filepath"

	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/metrics"
	"github.com/dtrain-dev/dtrain/node/miner"
)

// minerObserver shows a miner to the programs watching it: its typed
// events go to the JSONL metrics file (metrics.jsonl) and Prometheus
// (metrics.addr). dtrain swarm reads the file.
type minerObserver struct {
	roleLog
	seqLen int
	prom   *metrics.Miner // nil when metrics.addr is ""
}

func newMinerObserver(ctx context.Context, cfg config.Miner) (*minerObserver, error) {
	l, err := openRoleLog("miner", cfg.OutDir, cfg.Metrics.JSONL)
	if err != nil {
		return nil, err
	}
	o := &minerObserver{roleLog: l, seqLen: cfg.Data.SeqLen}
	o.board.SetInfo(cfg.RunID, "", 0, int64(cfg.Data.SeqLen))
	if cfg.Metrics.Addr != "" {
		o.prom = metrics.NewMiner(cfg.RunID)
		if err := o.serve(ctx, cfg.Metrics.Addr, o.prom.Registry()); err != nil {
			o.close()
			return nil, err
		}
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
