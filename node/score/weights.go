package score

import (
	"fmt"
	"maps"
	"math"
	"slices"
)

// Weights is a validator's verdict on the miners at the end of an epoch.
type Weights struct {
	Epoch uint64 `json:"epoch"`
	// Miners is every miner held, sorted by id; Weight sums to 1 over them,
	// or is 0 for all when no miner scores.
	Miners []MinerWeight `json:"miners"`
	// Chain is Miners' weights as a Bittensor validator submits them.
	Chain ChainWeights `json:"chain"`
}

// MinerWeight is one miner's weight and what it is made of. A component
// the scorer has no observation for is nil.
type MinerWeight struct {
	Miner  string  `json:"miner"`
	Weight float64 `json:"weight"`
	// Score is Gate·Work·Delivery·(1 − NetworkShare + NetworkShare·Network)
	// for an Active miner, else 0.
	Score float64 `json:"score"`
	// Active: seen alive in the last AliveExpiry epochs and in a round in
	// the last RoundExpiry.
	Active   bool     `json:"active"`
	Gate     float64  `json:"gate"`
	Strikes  int      `json:"strikes"`
	Work     float64  `json:"work"`
	Delivery *float64 `json:"delivery,omitempty"`
	Network  float64  `json:"network"`
	// The parts of Network.
	Bandwidth *float64 `json:"bandwidth,omitempty"`
	Latency   *float64 `json:"latency,omitempty"`
	Sync      *float64 `json:"sync,omitempty"`
}

// Weights closes every open epoch up to epoch and returns the weights at
// its end. Asking again for the last closed epoch answers the same; an
// earlier one, or one before anything was closed, is ErrClosedEpoch (no
// history is kept).
func (s *Scorer) Weights(epoch uint64) (Weights, error) {
	switch {
	case epoch == math.MaxUint64:
		return Weights{}, fmt.Errorf("score: weights for epoch %d: the last epoch cannot be closed", epoch)
	case epoch+1 < s.next || (epoch+1 == s.next && !s.closedAny):
		return Weights{}, fmt.Errorf("weights for epoch %d, first open %d: %w", epoch, s.next, ErrClosedEpoch)
	case epoch >= s.next:
		s.closeThrough(epoch)
	}
	return s.vector(epoch), nil
}

// vector computes the weights at the end of closed epoch e, in the order
// of miner ids, so the float sums are the same on every run.
func (s *Scorer) vector(e uint64) Weights {
	ids := slices.Sorted(maps.Keys(s.miners))
	w := Weights{Epoch: e, Miners: make([]MinerWeight, len(ids))}
	var total float64
	for i, id := range ids {
		w.Miners[i] = s.miners[id].weight(id, e, &s.cfg)
		total += w.Miners[i].Score
	}
	if total > 0 {
		for i := range w.Miners {
			w.Miners[i].Weight = w.Miners[i].Score / total
		}
	}
	w.Chain = chainWeights(w.Miners, s.cfg.UIDs, s.cfg.Version)
	return w
}

// weight computes the miner's score at the end of closed epoch e.
func (m *miner) weight(id string, e uint64, c *Config) MinerWeight {
	mw := MinerWeight{
		Miner:   id,
		Active:  m.aliveEver && m.aliveAt+c.AliveExpiry > e && m.roundEver && m.roundAt+c.RoundExpiry > e,
		Gate:    m.gate(c.RecoveryEpochs),
		Strikes: m.strikes,
		Work:    c.NewMinerWork,
	}
	if m.work.ok {
		mw.Work = m.work.v
	}
	if m.delivery.ok {
		mw.Delivery = ptr(m.delivery.v)
	}
	if m.sync.ok {
		mw.Sync = ptr(m.sync.v)
	}
	mw.Bandwidth, mw.Latency = m.link(c)
	mw.Network = network(c, mw.Bandwidth, mw.Latency, mw.Sync)
	if mw.Active {
		mw.Score = mw.Gate * mw.Work * *mw.Delivery * (1 - c.NetworkShare + c.NetworkShare*mw.Network)
	}
	return mw
}

// gate is 1 for a miner never caught; after a cheat it is 0, and it climbs
// back as (clean/K)², K = recovery·2^(strikes−1) epochs with a pass: slowly
// at first, so a miner that cheats every few epochs stays near 0.
func (m *miner) gate(recovery int) float64 {
	if m.strikes == 0 {
		return 1
	}
	k := float64(recovery << (m.strikes - 1))
	r := min(1, float64(m.clean)/k)
	return r * r
}

// link scores the medians of the probe window: bandwidth from the slower
// direction (an all-reduce moves as much each way, so the slower one sets
// its time), latency from the RTT. A failed probe counts as no bandwidth
// and an unbounded RTT.
func (m *miner) link(c *Config) (bandwidth, latency *float64) {
	var ups, downs, rtts []float64
	for _, p := range m.probes.values() {
		switch {
		case p.failed:
			ups, downs, rtts = append(ups, 0), append(downs, 0), append(rtts, math.Inf(1))
			continue
		case p.up > 0:
			ups = append(ups, p.up)
		}
		if p.down > 0 {
			downs = append(downs, p.down)
		}
		if p.rtt > 0 {
			rtts = append(rtts, p.rtt)
		}
	}
	if len(ups) > 0 || len(downs) > 0 {
		rate := math.Inf(1)
		if len(ups) > 0 {
			rate = median(ups)
		}
		if len(downs) > 0 {
			rate = min(rate, median(downs))
		}
		bandwidth = ptr(bandwidthScore(rate, c.MinBandwidth, c.TargetBandwidth))
	}
	if len(rtts) > 0 {
		latency = ptr(latencyScore(median(rtts), c.GoodRTT.Seconds(), c.MaxRTT.Seconds()))
	}
	return bandwidth, latency
}

// network is the weighted mean of the known network parts; 1 when none is
// known, since a miner this validator has not probed has shown nothing
// against it (a miner that dodges probes fails them instead).
func network(c *Config, bandwidth, latency, sync *float64) float64 {
	var sum, weights float64
	for _, p := range []struct {
		v *float64
		w float64
	}{{bandwidth, c.BandwidthWeight}, {latency, c.LatencyWeight}, {sync, c.SyncWeight}} {
		if p.v != nil {
			sum += p.w * *p.v
			weights += p.w
		}
	}
	if weights == 0 {
		return 1
	}
	return sum / weights
}

func ptr(f float64) *float64 { return &f }
