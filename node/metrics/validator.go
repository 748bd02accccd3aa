package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Validator holds a validator's Prometheus metrics, all named
// dtrain_validator_* and labelled run="<run_id>", in a registry of its
// own, as Miner does for a miner.
//
// A nil *Validator accepts every observation and records nothing.
type Validator struct {
	reg      *prometheus.Registry
	epoch    prometheus.Gauge
	miners   prometheus.Gauge
	active   prometheus.Gauge
	loss     prometheus.Gauge
	valLoss  prometheus.Gauge
	samples  prometheus.Counter
	rounds   *prometheus.CounterVec
	verdicts *prometheus.CounterVec
	probes   *prometheus.CounterVec
}

// NewValidator creates the metrics of a validator of the run runID in a
// new registry.
func NewValidator(runID string) *Validator {
	reg, run := newRegistry(runID)
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: run})
	}
	vec := func(name, help, label string, values ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: run}, []string{label})
		for _, v := range values {
			c.WithLabelValues(v)
		}
		return c
	}
	v := &Validator{
		reg:     reg,
		epoch:   gauge("dtrain_validator_epoch", "The last epoch the validator closed and wrote weights for."),
		miners:  gauge("dtrain_validator_miners", "Miners in the last weights."),
		active:  gauge("dtrain_validator_miners_active", "Miners active in the last weights."),
		loss:    gauge("dtrain_validator_train_loss", "The miners' mean reported training loss in the last closed epoch."),
		valLoss: gauge("dtrain_validator_val_loss", "Held-out loss of the swarm's state, as the validator last evaluated it."),
		samples: prometheus.NewCounter(prometheus.CounterOpts{Name: "dtrain_validator_samples_total", Help: "Samples the miners reported over the closed epochs.", ConstLabels: run}),
		rounds:  vec("dtrain_validator_rounds_total", "All-reduce rounds joined as an aux member, by result (ok, failed).", "result", "ok", "failed"),
		verdicts: vec("dtrain_validator_verdicts_total", "Verdicts on miners' updates, by kind (pass, inconclusive, cheat).", "verdict",
			"pass", "inconclusive", "cheat"),
		probes: vec("dtrain_validator_probes_total", "Probes of miners' links, by result (ok, failed).", "result", "ok", "failed"),
	}
	reg.MustRegister(v.epoch, v.miners, v.active, v.loss, v.valLoss, v.samples, v.rounds, v.verdicts, v.probes)
	return v
}

// Registerer is the registry as a Registerer for others' metrics
// (go-libp2p's); nil when v is nil.
func (v *Validator) Registerer() prometheus.Registerer {
	if v == nil {
		return nil
	}
	return v.reg
}

// Registry is the registry that holds the metrics, for Serve.
func (v *Validator) Registry() *prometheus.Registry {
	if v == nil {
		return nil
	}
	return v.reg
}

// ObserveEpoch records a closed epoch: its miners, those active, the
// samples reported and the mean loss (NaN: none, left as it was).
func (v *Validator) ObserveEpoch(epoch uint64, miners, active int, samples int64, loss float64) {
	if v == nil {
		return
	}
	v.epoch.Set(float64(epoch))
	v.miners.Set(float64(miners))
	v.active.Set(float64(active))
	if samples > 0 {
		v.samples.Add(float64(samples))
	}
	if loss == loss {
		v.loss.Set(loss)
	}
}

// ObserveValLoss records a held-out loss the validator evaluated.
func (v *Validator) ObserveValLoss(loss float64) {
	if v != nil && loss == loss {
		v.valLoss.Set(loss)
	}
}

// ObserveRound counts a round joined.
func (v *Validator) ObserveRound(failed bool) {
	if v != nil {
		v.rounds.WithLabelValues(result(failed)).Inc()
	}
}

// ObserveVerdict counts a verdict of kind pass, inconclusive or cheat.
func (v *Validator) ObserveVerdict(kind string) {
	if v != nil && (kind == "pass" || kind == "inconclusive" || kind == "cheat") {
		v.verdicts.WithLabelValues(kind).Inc()
	}
}

// ObserveProbe counts a probe.
func (v *Validator) ObserveProbe(failed bool) {
	if v != nil {
		v.probes.WithLabelValues(result(failed)).Inc()
	}
}

func result(failed bool) string {
	if failed {
		return "failed"
	}
	return "ok"
}
