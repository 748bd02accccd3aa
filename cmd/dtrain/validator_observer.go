package main

import (
	"context"

	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/metrics"
	"github.com/dtrain-dev/dtrain/node/validator"
	"github.com/dtrain-dev/dtrain/node/wandb"
)

// validatorObserver shows a validator to the people and programs watching
// it: its events go to metrics.jsonl, Prometheus and its dashboard, which
// metrics.addr serves beside /metrics.
type validatorObserver struct {
	roleLog
	prom  *metrics.Validator
	wandb *wandb.Run // nil without $WANDB_API_KEY

	roundS []float64 // the round times of the epoch being observed, for its W&B row
}

// newValidatorObserver opens the validator's metrics log, folds the
// history it holds into the dashboard (a restarted validator shows the
// run from where its log begins), and serves metrics.addr.
func newValidatorObserver(ctx context.Context, cfg config.Validator) (*validatorObserver, error) {
	l, err := openRoleLog("validator", cfg.OutDir, cfg.Metrics.JSONL)
	if err != nil {
		return nil, err
	}
	o := &validatorObserver{roleLog: l}
	if cfg.Metrics.Addr != "" {
		o.prom = metrics.NewValidator(cfg.RunID)
		if err := o.serve(ctx, cfg.Metrics.Addr, o.prom.Registry()); err != nil {
			o.close()
			return nil, err
		}
	}
	return o, nil
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
		o.wandbEpoch(e, active)
	case validator.RoundEvent:
		o.prom.ObserveRound(e.Err != "")
		o.roundS = append(o.roundS, e.Took.Seconds())
	case validator.VerdictEvent:
		o.prom.ObserveVerdict(e.Verdict)
	case validator.ProbeEvent:
		o.prom.ObserveProbe(e.Failed)
	case validator.EvalEvent:
		o.prom.ObserveValLoss(e.ValLoss)
		if o.wandb != nil {
			o.wandb.Log(map[string]any{"val_epoch": e.Epoch, "val_loss": e.ValLoss})
		}
	}
}

// wandbEpoch logs an epoch's history row to W&B: the swarm's loss and
// samples, the round times, and each miner's score and weight (keyed by
// the last 8 characters of its peer id).
func (o *validatorObserver) wandbEpoch(e validator.EpochEvent, active int) {
	if o.wandb == nil {
		return
	}
	s := o.board.Summary()
	row := map[string]any{"epoch": e.Epoch, "loss": e.Loss, "samples": e.Samples, "tokens": s.Tokens, "tokens_per_s": s.TokensPerS,
		"miners": len(e.Weights.Miners), "miners_active": active, "rounds": len(o.roundS), "caught": s.Caught}
	if n := len(o.roundS); n > 0 {
		var sum float64
		for _, t := range o.roundS {
			sum += t
		}
		row["round_s"] = sum / float64(n)
	}
	o.roundS = o.roundS[:0]
	for _, m := range e.Weights.Miners {
		id := m.Miner[max(0, len(m.Miner)-8):]
		row["weight/"+id], row["score/"+id] = m.Weight, m.Score
	}
	o.wandb.Log(row)
	o.wandb.Summary(map[string]any{"epoch": e.Epoch, "loss": e.Loss, "tokens": s.Tokens, "caught": s.Caught})
}

// startWandb starts the validator's W&B run when $WANDB_API_KEY is set.
func (o *validatorObserver) startWandb(cfg config.Validator, peer string) {
	md := cfg.Model
	o.wandb = openWandb(cfg.Wandb, cfg.RunID, "validator", peer, map[string]any{"run_id": cfg.RunID, "peer": peer,
		"n_layer": md.NLayer, "n_head": md.NHead, "n_embd": md.NEmbd, "n_positions": md.NPositions, "vocab_size": md.VocabSize,
		"aggregation": cfg.Swarm.Aggregation, "compress": cfg.Swarm.Compress, "min_group": cfg.Swarm.MinGroup,
		"max_group": cfg.Swarm.MaxGroup, "verify_mode": cfg.Verify.Mode})
}

func (o *validatorObserver) close() {
	closeWandb(o.wandb)
	o.roleLog.close()
}
