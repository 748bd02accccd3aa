package metrics

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestMinerServedOverHTTP scrapes a miner's metrics after a few epochs,
// rounds and loads: each has its dtrain_miner_* name and the value the
// observations make.
func TestMinerServedOverHTTP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := NewMiner("swarm-1")
	addr, err := Serve(ctx, "127.0.0.1:0", m.Registry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m.SetState(3, 2)
	m.ObserveRound(500*time.Millisecond, 1000, 1500, false)
	m.ObserveRound(4*time.Second, 200, 0, true)
	m.ObserveEpoch(MinerEpoch{Next: 4, Outcome: OutcomeAveraged, Loss: 3.5, ValLoss: 3.25, Tokens: 4096, TokensPerSec: 2048, Peers: 3})
	m.ObserveEpoch(MinerEpoch{Next: 4, Outcome: OutcomeDropped, Loss: 3.0, Tokens: 1024, TokensPerSec: 512, Peers: 2})
	m.ObserveLoad(0, true)
	m.ObserveLoad(6, false)
	m.ObserveLinkRate("down", 2.5e6)
	m.ObserveLinkRate("sideways", 1)

	got := samples(t, get(t, "http://"+addr+"/metrics"))
	const run = `{run="swarm-1"}`
	want := map[string]float64{
		"dtrain_miner_epoch" + run:                                           6,
		"dtrain_miner_train_loss" + run:                                      3.0,
		"dtrain_miner_val_loss" + run:                                        3.25, // the dropped epoch was not evaluated
		"dtrain_miner_tokens_per_second" + run:                               512,
		"dtrain_miner_tokens_trained_total" + run:                            5120,
		"dtrain_miner_peers" + run:                                           2,
		`dtrain_miner_epochs_total{outcome="averaged",run="swarm-1"}`:        1,
		`dtrain_miner_epochs_total{outcome="dropped",run="swarm-1"}`:         1,
		`dtrain_miner_epochs_total{outcome="alone",run="swarm-1"}`:           0,
		"dtrain_miner_round_seconds_count" + run:                             2,
		"dtrain_miner_round_seconds_sum" + run:                               4.5,
		`dtrain_miner_round_seconds_bucket{run="swarm-1",le="0.8"}`:          1,
		"dtrain_miner_rounds_failed_total" + run:                             1,
		"dtrain_miner_bytes_sent_total" + run:                                1200,
		"dtrain_miner_bytes_received_total" + run:                            1500,
		`dtrain_miner_state_loads_total{result="ok",run="swarm-1"}`:          1,
		`dtrain_miner_state_loads_total{result="failed",run="swarm-1"}`:      1,
		`dtrain_miner_link_bytes_per_second{direction="down",run="swarm-1"}`: 2.5e6,
	}
	// Exact: small integers and dyadic fractions, exact in float64 and in
	// their printed form.
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", name, g, ok, v)
		}
	}
	for name := range got {
		if strings.Contains(name, `direction="up"`) || strings.Contains(name, "sideways") {
			t.Errorf("%s is there: no up rate was measured", name)
		}
	}
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("go_goroutines missing: want the Go and process collectors")
	}
}

// TestNilMinerRecordsNothing: cmd/dtrain reports unconditionally when
// metrics.addr is off.
func TestNilMinerRecordsNothing(t *testing.T) {
	var m *Miner
	m.SetState(1, 1)
	m.ObserveEpoch(MinerEpoch{Next: 1, Outcome: OutcomeAlone, Tokens: 1})
	m.ObserveRound(time.Second, 1, 1, true)
	m.ObserveLoad(1, false)
	m.ObserveLinkRate("down", 1)
	if m.Registry() != nil {
		t.Error("nil Miner has a registry")
	}
	bad := NewMiner("r")
	bad.ObserveRound(-time.Second, -1, -1, false)
	bad.ObserveEpoch(MinerEpoch{Tokens: -5})
	if _, err := bad.Registry().Gather(); err != nil {
		t.Fatalf("Gather after bad observations: %v", err)
	}
}
