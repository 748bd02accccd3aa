package score

import (
	"math"
	"reflect"
	"testing"
	"time"
)

// TestU16Weights: max-upscaling as bittensor's convert_weights_and_uids_for_emit
// does it (Python's round: half to even).
func TestU16Weights(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []float64
		want []uint16
	}{
		{"none", nil, []uint16{}},
		{"all zero", []float64{0, 0, 0}, []uint16{0, 0, 0}},
		{"one", []float64{0.3}, []uint16{65535}},
		{"all equal", []float64{0.25, 0.25, 0.25, 0.25}, []uint16{65535, 65535, 65535, 65535}},
		{"max-upscaled, not summed", []float64{0.6, 0.3, 0.1}, []uint16{65535, 32768, 10923}},
		{"a third", []float64{3, 1}, []uint16{65535, 21845}},
		{"half to even, down", []float64{65535, 2.5}, []uint16{65535, 2}},
		{"half to even, up", []float64{65535, 1.5}, []uint16{65535, 2}},
		{"rounds to zero", []float64{1, 1e-6}, []uint16{65535, 0}},
		{"smallest nonzero", []float64{1, 0.5 / 65535 * 1.0000001}, []uint16{65535, 1}},
		{"tiny scale", []float64{1e-300, 5e-301}, []uint16{65535, 32768}},
	} {
		got, err := U16Weights(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(got) != len(c.want) || (len(got) > 0 && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, err := U16Weights([]float64{1, bad}); err == nil {
			t.Errorf("weight %v accepted", bad)
		}
	}
}

// TestChainWeights: the vector a validator would submit: uids from the
// config's map (unmapped miners counted, not sent), sorted by uid, zeros
// dropped, the largest 65535, and the version key.
func TestChainWeights(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Version = Version{Major: 2, Minor: 13, Patch: 4}
	cfg.UIDs = map[string]uint16{"a": 7, "b": 3, "idle": 1}
	s := mustNew(t, cfg, 0)
	observeAll(t, s, honestEpoch(0, "a", link{mbps(300), 10 * time.Millisecond}, 0.02))
	observeAll(t, s, honestEpoch(0, "b", link{mbps(300), 10 * time.Millisecond}, 0.01))
	observeAll(t, s, honestEpoch(0, "unmapped", link{mbps(300), 10 * time.Millisecond}, 0.02))
	observeAll(t, s, []Observation{Seen{Miner: "idle"}})
	w := mustWeights(t, s, 0)
	// a's work is 1, b's 0.75 (half the median quality): 65535·0.75.
	want := ChainWeights{UIDs: []uint16{3, 7}, Weights: []uint16{49151, 65535}, Miners: []string{"b", "a"}, VersionKey: 2134, Unmapped: 1}
	if !reflect.DeepEqual(w.Chain, want) {
		t.Fatalf("chain weights %+v, want %+v", w.Chain, want)
	}

	// Without a map a miner's uid is its index in the sorted vector.
	s = mustNew(t, DefaultConfig(), 0)
	for _, id := range []string{"c", "a", "b"} {
		observeAll(t, s, honestEpoch(0, id, link{mbps(300), 10 * time.Millisecond}, 0.02))
	}
	observeAll(t, s, []Observation{Seen{Miner: "0-idle"}})
	w = mustWeights(t, s, 0)
	want = ChainWeights{UIDs: []uint16{1, 2, 3}, Weights: []uint16{65535, 65535, 65535}, Miners: []string{"a", "b", "c"}, VersionKey: 10}
	if !reflect.DeepEqual(w.Chain, want) {
		t.Fatalf("chain weights %+v, want %+v", w.Chain, want)
	}

	// Nobody scores: empty lists, as bittensor sends nothing.
	s = mustNew(t, DefaultConfig(), 0)
	observeAll(t, s, []Observation{Seen{Miner: "idle"}})
	w = mustWeights(t, s, 0)
	if len(w.Chain.UIDs) != 0 || len(w.Chain.Weights) != 0 || w.Chain.UIDs == nil {
		t.Fatalf("chain weights with no score: %+v, want empty lists", w.Chain)
	}
}
