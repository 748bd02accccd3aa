package score

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// mbps is a rate in bytes/s from Mbit/s.
func mbps(m float64) float64 { return m * 1e6 / 8 }

// link is what a test miner's probes measure.
type link struct {
	rate float64 // bytes/s, both directions
	rtt  time.Duration
}

// honestEpoch is everything a validator observes in one epoch of a miner
// that does its work on time: alive and in sync, probed, on time in a
// round, and passed with the given quality.
func honestEpoch(e uint64, id string, l link, quality float64) []Observation {
	return []Observation{
		Seen{Epoch: e, Miner: id},
		Probe{Epoch: e, Miner: id, RTT: l.rtt, Up: l.rate, Down: l.rate},
		Round{Epoch: e, Miner: id, Delivery: OnTime, Rate: l.rate},
		Verdict{Epoch: e, Miner: id, Kind: Pass, Quality: quality},
	}
}

func mustNew(t testing.TB, cfg Config, start uint64) *Scorer {
	t.Helper()
	s, err := New(cfg, start)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func observeAll(t testing.TB, s *Scorer, obs []Observation) {
	t.Helper()
	for _, o := range obs {
		if err := s.Observe(o); err != nil {
			t.Fatalf("observe %+v: %v", o, err)
		}
	}
}

func mustWeights(t testing.TB, s *Scorer, e uint64) Weights {
	t.Helper()
	w, err := s.Weights(e)
	if err != nil {
		t.Fatalf("weights of epoch %d: %v", e, err)
	}
	return w
}

// weightOf returns id's entry in w.
func weightOf(t testing.TB, w Weights, id string) MinerWeight {
	t.Helper()
	i, ok := slices.BinarySearchFunc(w.Miners, id, func(m MinerWeight, id string) int {
		switch {
		case m.Miner < id:
			return -1
		case m.Miner > id:
			return 1
		}
		return 0
	})
	if !ok {
		t.Fatalf("epoch %d: no weight for %s", w.Epoch, id)
	}
	return w.Miners[i]
}

// medianWeight is the median weight of the miners named.
func medianWeight(t testing.TB, w Weights, ids []string) float64 {
	t.Helper()
	ws := make([]float64, len(ids))
	for i, id := range ids {
		ws[i] = weightOf(t, w, id).Weight
	}
	return median(ws)
}

func minerName(i int) string { return fmt.Sprintf("miner-%03d", i) }
