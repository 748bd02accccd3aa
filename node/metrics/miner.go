package metrics

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Miner holds a miner's Prometheus metrics, all named dtrain_miner_* and
// labelled run="<run_id>", in a registry of its own (with the Go runtime
// and process collectors), as Training does for a training run.
//
// A nil *Miner accepts every observation and records nothing.
type Miner struct {
	reg *prometheus.Registry

	epoch         prometheus.Gauge
	trainLoss     prometheus.Gauge
	valLoss       prometheus.Gauge
	tokensPerSec  prometheus.Gauge
	tokens        prometheus.Counter
	peers         prometheus.Gauge
	epochs        *prometheus.CounterVec
	roundSeconds  prometheus.Histogram
	roundsFailed  prometheus.Counter
	bytesSent     prometheus.Counter
	bytesReceived prometheus.Counter
	stateLoads    *prometheus.CounterVec
	linkRate      *prometheus.GaugeVec
}

// Epoch outcomes, the values of dtrain_miner_epochs_total's outcome label.
const (
	OutcomeAveraged = "averaged" // a group's mean of two or more updates applied
	OutcomeAlone    = "alone"    // the miner's own update applied alone
	OutcomeDropped  = "dropped"  // the update dropped; the miner stayed at the epoch
)

// NewMiner creates the metrics of a miner of the run runID in a new
// registry.
func NewMiner(runID string) *Miner {
	reg, run := newRegistry(runID)
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: run})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: run})
	}
	m := &Miner{
		reg:          reg,
		epoch:        gauge("dtrain_miner_epoch", "Epoch of the miner's state: the next epoch it trains."),
		trainLoss:    gauge("dtrain_miner_train_loss", "Mean local training loss (nats/token) of the last finished epoch."),
		valLoss:      gauge("dtrain_miner_val_loss", "Held-out loss (nats/token) after the last evaluated epoch."),
		tokensPerSec: gauge("dtrain_miner_tokens_per_second", "Local training throughput of the last finished epoch."),
		tokens:       counter("dtrain_miner_tokens_trained_total", "Tokens this process has trained on."),
		peers:        gauge("dtrain_miner_peers", "Peers on the run's gossip, at the miner's start and at the end of each epoch."),
		epochs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dtrain_miner_epochs_total",
			Help: "Epochs finished, by outcome: averaged (a group's mean applied), alone (own update applied), dropped.", ConstLabels: run},
			[]string{"outcome"}),
		// 50 ms to about 27 min: a small model on loopback to a big one
		// over the internet.
		roundSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dtrain_miner_round_seconds",
			Help: "Wall time of each all-reduce round the miner took part in, failed ones included.", ConstLabels: run,
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)}),
		roundsFailed:  counter("dtrain_miner_rounds_failed_total", "All-reduce rounds that ended without a mean for this miner."),
		bytesSent:     counter("dtrain_miner_bytes_sent_total", "Bytes of the frames the miner wrote in all-reduce rounds."),
		bytesReceived: counter("dtrain_miner_bytes_received_total", "Bytes of the frames the miner read in all-reduce rounds."),
		stateLoads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dtrain_miner_state_loads_total",
			Help: "State loads from peers or the hub, by result (ok, failed).", ConstLabels: run}, []string{"result"}),
		linkRate: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dtrain_miner_link_bytes_per_second",
			Help: "The rate of the miner's link by direction (up, down), as it measured it (probes and past rounds) and announces it; " +
				"no series until it has a measurement.", ConstLabels: run}, []string{"direction"}),
	}
	for _, o := range []string{OutcomeAveraged, OutcomeAlone, OutcomeDropped} {
		m.epochs.WithLabelValues(o)
	}
	m.stateLoads.WithLabelValues("ok")
	m.stateLoads.WithLabelValues("failed")
	reg.MustRegister(m.epoch, m.trainLoss, m.valLoss, m.tokensPerSec, m.tokens, m.peers, m.epochs,
		m.roundSeconds, m.roundsFailed, m.bytesSent, m.bytesReceived, m.stateLoads, m.linkRate)
	return m
}

// Registerer is the registry as a Registerer for others' metrics
// (go-libp2p's); nil when m is nil.
func (m *Miner) Registerer() prometheus.Registerer {
	if m == nil {
		return nil
	}
	return m.reg
}

// Registry is the registry that holds the metrics, for Serve.
func (m *Miner) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// MinerEpoch is what a finished epoch reports.
type MinerEpoch struct {
	Next         uint64  // the epoch of the miner's state after it: the next it trains
	Outcome      string  // OutcomeAveraged, OutcomeAlone or OutcomeDropped
	Loss         float64 // mean local training loss
	ValLoss      float64 // held-out loss; 0: not evaluated
	Tokens       int64   // tokens trained in the epoch
	TokensPerSec float64
	Peers        int
}

// ObserveEpoch records a finished epoch. Its all-reduce traffic comes
// with its rounds (ObserveRound).
func (m *Miner) ObserveEpoch(e MinerEpoch) {
	if m == nil {
		return
	}
	m.epoch.Set(float64(e.Next))
	m.trainLoss.Set(e.Loss)
	if e.ValLoss != 0 {
		m.valLoss.Set(e.ValLoss)
	}
	m.tokensPerSec.Set(e.TokensPerSec)
	if e.Tokens > 0 {
		m.tokens.Add(float64(e.Tokens))
	}
	m.peers.Set(float64(e.Peers))
	if e.Outcome != "" {
		m.epochs.WithLabelValues(e.Outcome).Inc()
	}
}

// SetState records the epoch of a state the miner started from, resumed
// or loaded, and the peers it sees, outside any epoch's end.
func (m *Miner) SetState(epoch uint64, peers int) {
	if m == nil {
		return
	}
	m.epoch.Set(float64(epoch))
	if peers >= 0 {
		m.peers.Set(float64(peers))
	}
}

// ObserveRound records one all-reduce round: its wall time, the frame
// bytes it wrote and read, and whether it failed. Negative counts, which
// only a bug produces, are not added (counters only go up).
func (m *Miner) ObserveRound(took time.Duration, sent, received int64, failed bool) {
	if m == nil {
		return
	}
	if s := took.Seconds(); s >= 0 && !math.IsInf(s, 0) {
		m.roundSeconds.Observe(s)
	}
	if sent > 0 {
		m.bytesSent.Add(float64(sent))
	}
	if received > 0 {
		m.bytesReceived.Add(float64(received))
	}
	if failed {
		m.roundsFailed.Inc()
	}
}

// ObserveLoad records a state load, and the epoch of the state the miner
// holds after it.
func (m *Miner) ObserveLoad(epoch uint64, failed bool) {
	if m == nil {
		return
	}
	if failed {
		m.stateLoads.WithLabelValues("failed").Inc()
		return
	}
	m.stateLoads.WithLabelValues("ok").Inc()
	m.epoch.Set(float64(epoch))
}

// ObserveLinkRate records a measured transfer rate in bytes/s in
// direction "up" or "down"; other directions and rates that are not
// positive and finite are ignored.
func (m *Miner) ObserveLinkRate(direction string, bytesPerSec float64) {
	if m == nil || (direction != "up" && direction != "down") || !(bytesPerSec > 0) || math.IsInf(bytesPerSec, 0) {
		return
	}
	m.linkRate.WithLabelValues(direction).Set(bytesPerSec)
}
