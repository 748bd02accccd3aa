package main

import (
	"context"
	"path/filepath"

	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/metrics"
	"github.com/dtrain-dev/dtrain/node/miner"
	"github.com/dtrain-dev/dtrain/node/wandb"
)

// minerObserver shows a miner to the programs watching it: its typed
// events go to the JSONL metrics file (metrics.jsonl) and Prometheus
// (metrics.addr). dtrain swarm reads the file.
type minerObserver struct {
	roleLog
	seqLen   int
	run      string
	wandbCfg config.Wandb
	prom     *metrics.Miner // nil when metrics.addr is ""
	wandb    *wandb.Run     // nil without $WANDB_API_KEY
}

func newMinerObserver(ctx context.Context, cfg config.Miner) (*minerObserver, error) {
	l, err := openRoleLog("miner", cfg.OutDir, cfg.Metrics.JSONL)
	if err != nil {
		return nil, err
	}
	o := &minerObserver{roleLog: l, seqLen: cfg.Data.SeqLen, run: cfg.RunID, wandbCfg: cfg.Wandb}
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
		if o.wandb == nil {
			o.wandb = openWandb(o.wandbCfg, o.run, "miner", e.Peer, map[string]any{"run_id": o.run, "peer": e.Peer, "mode": e.Mode,
				"params": e.Params})
		}
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
		if o.wandb != nil {
			row := map[string]any{"epoch": e.Epoch, "loss": e.Loss, "samples": e.Samples, "tokens": e.Tokens, "tokens_per_s": e.TokensPerSec,
				"group": e.Group, "contributors": e.Contributors, "dropped": e.Dropped, "sync_s": e.SyncTime.Seconds(),
				"allreduce_s": e.RoundTime.Seconds(), "bytes_sent": e.BytesSent, "bytes_received": e.BytesReceived}
			if e.ValLoss != 0 {
				row["val_loss"] = e.ValLoss
			}
			o.wandb.Log(row)
		}
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

func (o *minerObserver) close() {
	closeWandb(o.wandb)
	o.roleLog.close()
}
