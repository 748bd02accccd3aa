package score

import (
	"errors"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"time"
)

// randomEpochs makes a seeded stream of observations of n miners over
// epochs 0..epochs-1, with every kind and outcome, grouped by epoch.
func randomEpochs(seed int64, n, epochs int) [][]Observation {
	rng := rand.New(rand.NewSource(seed))
	out := make([][]Observation, epochs)
	for e := range out {
		ep := uint64(e)
		for i := range n {
			id := minerName(i)
			if rng.Intn(5) > 0 {
				out[e] = append(out[e], Seen{Epoch: ep, Miner: id, Behind: uint64(rng.Intn(3))})
			}
			for range rng.Intn(3) {
				if rng.Intn(8) == 0 {
					out[e] = append(out[e], Probe{Epoch: ep, Miner: id, Failed: true})
					continue
				}
				out[e] = append(out[e], Probe{Epoch: ep, Miner: id,
					RTT: time.Duration(5+rng.Intn(400)) * time.Millisecond,
					Up:  mbps(10 + 500*rng.Float64()), Down: mbps(10 + 500*rng.Float64())})
			}
			for range rng.Intn(3) {
				out[e] = append(out[e], Round{Epoch: ep, Miner: id, Delivery: Delivery(1 + rng.Intn(3))})
			}
			switch rng.Intn(6) {
			case 0:
				for range 1 + rng.Intn(2) { // two checks of one miner in an epoch, at times
					out[e] = append(out[e], Verdict{Epoch: ep, Miner: id, Kind: Pass, Quality: rng.NormFloat64()*0.01 + 0.02})
				}
			case 1:
				out[e] = append(out[e], Verdict{Epoch: ep, Miner: id, Kind: Inconclusive})
			case 2:
				if rng.Intn(10) == 0 {
					out[e] = append(out[e], Verdict{Epoch: ep, Miner: id, Kind: Cheat, Reason: "loss"})
				}
			}
		}
	}
	return out
}

// TestSameObservationsSameWeights: two scorers fed the same observations
// give bit-identical weights every epoch, and so does a third fed each
// epoch's observations in another order.
func TestSameObservationsSameWeights(t *testing.T) {
	epochs := randomEpochs(1, 30, 25)
	a := mustNew(t, DefaultConfig(), 0)
	b := mustNew(t, DefaultConfig(), 0)
	c := mustNew(t, DefaultConfig(), 0)
	rng := rand.New(rand.NewSource(2))
	for e, obs := range epochs {
		observeAll(t, a, obs)
		observeAll(t, b, obs)
		shuffled := append([]Observation(nil), obs...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		observeAll(t, c, shuffled)
		wa, wb, wc := mustWeights(t, a, uint64(e)), mustWeights(t, b, uint64(e)), mustWeights(t, c, uint64(e))
		if !reflect.DeepEqual(wa, wb) {
			t.Fatalf("epoch %d: same observations, different weights:\n%+v\n%+v", e, wa, wb)
		}
		if !reflect.DeepEqual(wa, wc) {
			t.Fatalf("epoch %d: same observations in another order, different weights:\n%+v\n%+v", e, wa, wc)
		}
	}
	w := mustWeights(t, a, 24)
	var sum float64
	positive := 0
	for _, m := range w.Miners {
		sum += m.Weight
		if m.Weight > 0 {
			positive++
		}
	}
	if positive < 10 || math.Abs(sum-1) > 1e-12 {
		t.Fatalf("%d miners weigh > 0, weights sum to %v: want most of 30 and 1", positive, sum)
	}
}

// TestCheaterGatedAndRecoversSlowly: a cheat verdict takes a miner to 0 in
// the epoch of the verdict; after it, it climbs back only over
// RecoveryEpochs clean epochs, and twice as slowly after a second strike.
func TestCheaterGatedAndRecoversSlowly(t *testing.T) {
	cfg := DefaultConfig()
	s := mustNew(t, cfg, 0)
	var honest []string
	for i := range 9 {
		honest = append(honest, minerName(i))
	}
	const cheater = "cheater"
	cheatAt := map[uint64]bool{5: true, 40: true}
	ratios := map[uint64]float64{}
	var work4 float64
	for e := uint64(0); e <= 100; e++ {
		for i, id := range honest {
			observeAll(t, s, honestEpoch(e, id, link{mbps(300), 30 * time.Millisecond}, 0.02+0.001*float64(i)))
		}
		obs := honestEpoch(e, cheater, link{mbps(300), 30 * time.Millisecond}, 0.03)
		if cheatAt[e] {
			obs[3] = Verdict{Epoch: e, Miner: cheater, Kind: Cheat, Reason: "no loss improvement on assigned batches"}
		}
		observeAll(t, s, obs)
		w := mustWeights(t, s, e)
		ratios[e] = weightOf(t, w, cheater).Weight / medianWeight(t, w, honest)
		switch e {
		case 4:
			work4 = weightOf(t, w, cheater).Work
		case 5: // the cheat is also a work sample of 0
			if got, want := weightOf(t, w, cheater).Work, (1-cfg.Alpha)*work4; math.Abs(got-want) > 1e-12 {
				t.Errorf("work after the cheat %v, want %v", got, want)
			}
		}
	}
	if r := ratios[4]; r < 0.95 {
		t.Errorf("before cheating the cheater has %.3f of the median honest weight, want about 1", r)
	}
	for _, c := range []struct {
		epoch    uint64
		min, max float64
	}{
		{5, 0, 0},         // the epoch of the verdict
		{6, 0, 0.01},      // one clean epoch: (1/20)²
		{10, 0, 0.1},      // five: (5/20)² = 0.0625
		{15, 0.2, 0.3},    // ten: 0.25
		{25, 0.95, 1.05},  // twenty: recovered
		{40, 0, 0},        // second strike
		{60, 0.2, 0.3},    // twenty of forty: 0.25
		{80, 0.95, 1.05},  // forty: recovered
		{100, 0.95, 1.05}, // stays
	} {
		if r := ratios[c.epoch]; r < c.min || r > c.max {
			t.Errorf("epoch %d: cheater at %.4f of the median honest weight, want %.2f..%.2f", c.epoch, r, c.min, c.max)
		}
	}
}

// TestSlowHonestMinerKeepsHalfTheMedian: an honest miner on a slow or far
// link keeps at least half the median honest weight.
func TestSlowHonestMinerKeepsHalfTheMedian(t *testing.T) {
	for _, c := range []struct {
		name string
		slow link
		want float64 // at least this fraction of the median
	}{
		{"50 Mbit/s", link{mbps(50), 30 * time.Millisecond}, 0.8},
		{"50 Mbit/s, 300 ms", link{mbps(50), 300 * time.Millisecond}, 0.7},
		{"5 Mbit/s, 2 s", link{mbps(5), 2 * time.Second}, 0.5},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mustNew(t, DefaultConfig(), 0)
			rng := rand.New(rand.NewSource(3))
			var ids []string
			links := []link{}
			for i := range 10 {
				ids = append(ids, minerName(i))
				links = append(links, link{mbps(200 + 800*rng.Float64()), time.Duration(5+rng.Intn(60)) * time.Millisecond})
			}
			var w Weights
			for e := uint64(0); e < 10; e++ {
				for i, id := range append(ids, "slow") {
					l := c.slow
					if i < len(links) {
						l = links[i]
					}
					observeAll(t, s, honestEpoch(e, id, l, 0.02*(0.9+0.2*rng.Float64())))
				}
				w = mustWeights(t, s, e)
			}
			if r := weightOf(t, w, "slow").Weight / medianWeight(t, w, ids); r < c.want {
				t.Errorf("slow miner at %.3f of the median weight, want >= %.2f", r, c.want)
			}
		})
	}
}

// TestMissingObservationsChangeNothing: a miner neither probed, checked,
// grouped nor seen in an epoch keeps its score, until the expiries.
func TestMissingObservationsChangeNothing(t *testing.T) {
	cfg := DefaultConfig()
	s := mustNew(t, cfg, 0)
	l := link{mbps(80), 60 * time.Millisecond}
	for e := uint64(0); e < 5; e++ {
		observeAll(t, s, honestEpoch(e, "a", l, 0.02))
		observeAll(t, s, honestEpoch(e, "b", link{mbps(300), 10 * time.Millisecond}, 0.03))
		mustWeights(t, s, e)
	}
	before := weightOf(t, mustWeights(t, s, 4), "a")
	for e := uint64(5); e < 4+cfg.AliveExpiry; e++ {
		observeAll(t, s, honestEpoch(e, "b", link{mbps(300), 10 * time.Millisecond}, 0.03))
		got := weightOf(t, mustWeights(t, s, e), "a")
		if !got.Active || got.Score != before.Score {
			t.Fatalf("epoch %d, unobserved: score %v (active %v), want %v as before", e, got.Score, got.Active, before.Score)
		}
	}
	// Only alive now, not probed, checked or grouped: still the same.
	e := 4 + cfg.AliveExpiry
	observeAll(t, s, honestEpoch(e, "b", link{mbps(300), 10 * time.Millisecond}, 0.03))
	observeAll(t, s, []Observation{Seen{Epoch: e, Miner: "a"}})
	if got := weightOf(t, mustWeights(t, s, e), "a"); got.Score != before.Score {
		t.Fatalf("epoch %d, only seen: score %v, want %v", e, got.Score, before.Score)
	}
	// Not even seen for AliveExpiry epochs: weight 0, but remembered.
	last := e + cfg.AliveExpiry
	w := mustWeights(t, s, last)
	if got := weightOf(t, w, "a"); got.Active || got.Weight != 0 {
		t.Fatalf("epoch %d, unseen since %d: weight %v active %v, want 0", last, e, got.Weight, got.Active)
	}
	// Forgotten after EvictAfter.
	if _, err := s.Weights(e + cfg.EvictAfter); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 0 {
		t.Fatalf("%d miners held after %d epochs unseen, want 0", s.Len(), cfg.EvictAfter)
	}
}

// TestDeliveryIsNeeded: a peer that answers probes, gossips and even
// passes a check but is never seen delivering in a round weighs nothing.
func TestDeliveryIsNeeded(t *testing.T) {
	s := mustNew(t, DefaultConfig(), 0)
	for e := uint64(0); e < 5; e++ {
		observeAll(t, s, honestEpoch(e, "worker", link{mbps(300), 10 * time.Millisecond}, 0.02))
		obs := honestEpoch(e, "idler", link{mbps(900), 5 * time.Millisecond}, 0.02)
		observeAll(t, s, append(obs[:2], obs[3]))
		mustWeights(t, s, e)
	}
	w := mustWeights(t, s, 4)
	if got := weightOf(t, w, "idler"); got.Weight != 0 || got.Active {
		t.Fatalf("idler: weight %v active %v, want 0", got.Weight, got.Active)
	}
	if got := weightOf(t, w, "worker"); got.Weight != 1 {
		t.Fatalf("worker: weight %v, want 1", got.Weight)
	}
}

// TestWorkCappedAtMedian: claiming a huge quality earns no more than the
// median; less than the median earns proportionally less, down to
// WorkFloor.
func TestWorkCappedAtMedian(t *testing.T) {
	s := mustNew(t, DefaultConfig(), 0)
	l := link{mbps(300), 10 * time.Millisecond}
	for e := uint64(0); e < 10; e++ {
		for i := range 5 {
			observeAll(t, s, honestEpoch(e, minerName(i), l, 0.02))
		}
		observeAll(t, s, honestEpoch(e, "boaster", l, 1e6))
		observeAll(t, s, honestEpoch(e, "weak", l, 0.01))
		observeAll(t, s, honestEpoch(e, "harmful", l, -0.5))
		mustWeights(t, s, e)
	}
	w := mustWeights(t, s, 9)
	ref := weightOf(t, w, minerName(0))
	for _, c := range []struct {
		id   string
		work float64
	}{{minerName(0), 1}, {"boaster", 1}, {"weak", 0.75}, {"harmful", 0.5}} {
		if got := weightOf(t, w, c.id); math.Abs(got.Work-c.work) > 1e-12 {
			t.Errorf("%s: work %v, want %v", c.id, got.Work, c.work)
		}
	}
	if b := weightOf(t, w, "boaster"); b.Weight != ref.Weight {
		t.Errorf("boaster weighs %v, an ordinary miner %v: want equal", b.Weight, ref.Weight)
	}
}

// TestEpochWindow: observations for closed epochs and for epochs past
// MaxAhead are refused; asking again for the last closed epoch answers
// the same; a jump of many epochs is cheap.
func TestEpochWindow(t *testing.T) {
	cfg := DefaultConfig()
	s := mustNew(t, cfg, 10)
	if _, err := s.Weights(9); !errors.Is(err, ErrClosedEpoch) {
		t.Fatalf("weights before anything closed: %v, want ErrClosedEpoch", err)
	}
	if err := s.Observe(Seen{Epoch: 10 + cfg.MaxAhead + 1, Miner: "a"}); !errors.Is(err, ErrFutureEpoch) {
		t.Fatalf("observation past MaxAhead: %v, want ErrFutureEpoch", err)
	}
	observeAll(t, s, honestEpoch(10+cfg.MaxAhead, "a", link{mbps(100), 10 * time.Millisecond}, 1))
	observeAll(t, s, honestEpoch(10, "a", link{mbps(100), 10 * time.Millisecond}, 1))
	w1 := mustWeights(t, s, 10)
	if err := s.Observe(Seen{Epoch: 10, Miner: "a"}); !errors.Is(err, ErrClosedEpoch) {
		t.Fatalf("observation for a closed epoch: %v, want ErrClosedEpoch", err)
	}
	if w2 := mustWeights(t, s, 10); !reflect.DeepEqual(w1, w2) {
		t.Fatalf("weights of epoch 10 asked twice differ:\n%+v\n%+v", w1, w2)
	}
	if _, err := s.Weights(9); !errors.Is(err, ErrClosedEpoch) {
		t.Fatalf("weights of an earlier epoch: %v, want ErrClosedEpoch", err)
	}
	if _, err := s.Weights(math.MaxUint64); err == nil {
		t.Fatal("weights of epoch MaxUint64: no error")
	}
	start := time.Now()
	w := mustWeights(t, s, math.MaxUint64-1)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("closing 2^64 epochs took %v", took)
	}
	if len(w.Miners) != 0 {
		t.Fatalf("after 2^64 epochs %d miners remain, want 0 (evicted)", len(w.Miners))
	}
}

// TestConfigValidate: defaults pass; each broken field is refused.
func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Config){
		"zero config":           func(c *Config) { *c = Config{} },
		"NaN min bandwidth":     func(c *Config) { c.MinBandwidth = math.NaN() },
		"target below min":      func(c *Config) { c.TargetBandwidth = c.MinBandwidth / 2 },
		"infinite target":       func(c *Config) { c.TargetBandwidth = math.Inf(1) },
		"max rtt below good":    func(c *Config) { c.MaxRTT = c.GoodRTT },
		"alpha 0":               func(c *Config) { c.Alpha = 0 },
		"alpha NaN":             func(c *Config) { c.Alpha = math.NaN() },
		"network share 2":       func(c *Config) { c.NetworkShare = 2 },
		"negative work floor":   func(c *Config) { c.WorkFloor = -0.1 },
		"no network weights":    func(c *Config) { c.BandwidthWeight, c.LatencyWeight, c.SyncWeight = 0, 0, 0 },
		"recovery 0":            func(c *Config) { c.RecoveryEpochs = 0 },
		"evict before expiry":   func(c *Config) { c.EvictAfter = c.RoundExpiry - 1 },
		"max miners 0":          func(c *Config) { c.MaxMiners = 0 },
		"max miners huge":       func(c *Config) { c.MaxMiners = 1 << 30 },
		"max samples huge":      func(c *Config) { c.MaxSamples = 1 << 20 },
		"probe window 0":        func(c *Config) { c.ProbeWindow = 0 },
		"max ahead huge":        func(c *Config) { c.MaxAhead = 1 << 40 },
		"alive expiry huge":     func(c *Config) { c.AliveExpiry = math.MaxUint64 },
		"minor 100":             func(c *Config) { c.Version.Minor = 100 },
		"patch 10":              func(c *Config) { c.Version.Patch = 10 },
		"uid shared":            func(c *Config) { c.UIDs = map[string]uint16{"a": 1, "b": 1} },
		"uid of a bad miner id": func(c *Config) { c.UIDs = map[string]uint16{"": 1} },
	} {
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: %v, want ErrBadConfig", name, err)
		}
		if _, err := New(c, 0); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	if k := (Version{Major: 1, Minor: 2, Patch: 3}).Key(); k != 1023 {
		t.Errorf("version 1.2.3 key %d, want 1023", k)
	}
}

// TestFailedProbesCount: probes that fail more often than not in an epoch
// count as no bandwidth and unbounded latency; a miner never probed has no
// link score (and no network penalty for it).
func TestFailedProbesCount(t *testing.T) {
	s := mustNew(t, DefaultConfig(), 0)
	good := Probe{Miner: "x", RTT: 10 * time.Millisecond, Up: mbps(300), Down: mbps(300)}
	probes := map[string][]Observation{
		"answers":     {good, Probe{Miner: "x", Failed: true}, good},
		"mostly down": {good, Probe{Miner: "x", Failed: true}, Probe{Miner: "x", Failed: true}},
		"unprobed":    nil,
	}
	for id, ps := range probes {
		observeAll(t, s, []Observation{Round{Miner: id, Delivery: OnTime}, Verdict{Miner: id, Kind: Pass, Quality: 1}})
		for _, p := range ps {
			p := p.(Probe)
			p.Miner = id
			observeAll(t, s, []Observation{p})
		}
	}
	w := mustWeights(t, s, 0)
	if m := weightOf(t, w, "answers"); m.Bandwidth == nil || *m.Bandwidth != 1 || *m.Latency != 1 {
		t.Errorf("answers 2 of 3: %+v, want bandwidth and latency 1", m)
	}
	if m := weightOf(t, w, "mostly down"); m.Bandwidth == nil || *m.Bandwidth != 0 || *m.Latency != 0 || m.Network != 0 {
		t.Errorf("fails 2 of 3: %+v, want bandwidth, latency and network 0", m)
	}
	if m := weightOf(t, w, "unprobed"); m.Bandwidth != nil || m.Latency != nil || m.Network != 1 {
		t.Errorf("unprobed: %+v, want no link scores and network 1", m)
	}
}
