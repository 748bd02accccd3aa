package score

import (
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestBadObservationsRefused: every malformed observation is refused with
// ErrBadObservation and leaves the weights exactly as if it had never come.
func TestBadObservationsRefused(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for name, o := range map[string]Observation{
		"nil":                     nil,
		"nil *Probe":              (*Probe)(nil),
		"nil *Verdict":            (*Verdict)(nil),
		"*Probe with NaN":         &Probe{Miner: "a", Up: nan},
		"empty id":                Seen{Miner: ""},
		"id too long":             Seen{Miner: strings.Repeat("x", MaxMinerID+1)},
		"id not UTF-8":            Seen{Miner: "a\xffb"},
		"id with a newline":       Seen{Miner: "a\nb"},
		"NaN up":                  Probe{Miner: "a", Up: nan},
		"+Inf down":               Probe{Miner: "a", Down: inf},
		"-Inf up":                 Probe{Miner: "a", Up: -inf},
		"negative up":             Probe{Miner: "a", Up: -1},
		"1e308 down":              Probe{Miner: "a", Down: 1e308},
		"negative rtt":            Probe{Miner: "a", RTT: -time.Millisecond},
		"rtt of a day":            Probe{Miner: "a", RTT: 24 * time.Hour},
		"probe measuring nothing": Probe{Miner: "a"},
		"failed with a rate":      Probe{Miner: "a", Failed: true, Up: 1},
		"round delivery 0":        Round{Miner: "a"},
		"round delivery 9":        Round{Miner: "a", Delivery: 9},
		"round rate NaN":          Round{Miner: "a", Delivery: OnTime, Rate: nan},
		"missed with a rate":      Round{Miner: "a", Delivery: Missed, Rate: 1e6},
		"verdict kind 0":          Verdict{Miner: "a"},
		"verdict kind 7":          Verdict{Miner: "a", Kind: 7},
		"quality NaN":             Verdict{Miner: "a", Kind: Pass, Quality: nan},
		"quality +Inf":            Verdict{Miner: "a", Kind: Pass, Quality: inf},
		"quality 1e308":           Verdict{Miner: "a", Kind: Pass, Quality: 1e308},
		"quality -1e308":          Verdict{Miner: "a", Kind: Pass, Quality: -1e308},
		"reason too long":         Verdict{Miner: "a", Kind: Cheat, Reason: strings.Repeat("r", MaxReason+1)},
		"reason not UTF-8":        Verdict{Miner: "a", Kind: Cheat, Reason: "\xc3"},
	} {
		ref := mustNew(t, DefaultConfig(), 0)
		s := mustNew(t, DefaultConfig(), 0)
		good := honestEpoch(0, "a", link{mbps(100), 20 * time.Millisecond}, 0.02)
		observeAll(t, ref, good)
		observeAll(t, s, good)
		if err := s.Observe(o); !errors.Is(err, ErrBadObservation) {
			t.Errorf("%s: %v, want ErrBadObservation", name, err)
		}
		if a, b := mustWeights(t, ref, 0), mustWeights(t, s, 0); !reflect.DeepEqual(a, b) {
			t.Errorf("%s changed the weights:\n%+v\n%+v", name, a, b)
		}
	}
}

// TestAbsurdButValidValuesBounded: the largest accepted values score like
// any value past the targets, and a Seen far behind only zeroes sync.
func TestAbsurdButValidValuesBounded(t *testing.T) {
	s := mustNew(t, DefaultConfig(), 0)
	observeAll(t, s, []Observation{
		Seen{Miner: "a", Behind: math.MaxUint64},
		Probe{Miner: "a", RTT: time.Nanosecond, Up: maxBandwidthLimit, Down: maxBandwidthLimit},
		Round{Miner: "a", Delivery: OnTime, Rate: maxBandwidthLimit},
		Verdict{Miner: "a", Kind: Pass, Quality: MaxQuality},
	})
	m := weightOf(t, mustWeights(t, s, 0), "a")
	if *m.Bandwidth != 1 || *m.Latency != 1 || *m.Sync != 0 || m.Work != 1 || m.Weight != 1 {
		t.Fatalf("got %+v, want bandwidth 1, latency 1, sync 0, work 1, weight 1", m)
	}
}

// TestSamplesPerEpochBounded: past MaxSamples probes or rounds of one miner
// in one epoch are refused; the next epoch takes them again.
func TestSamplesPerEpochBounded(t *testing.T) {
	cfg := DefaultConfig()
	s := mustNew(t, cfg, 0)
	for i := range cfg.MaxSamples {
		if err := s.Observe(Probe{Miner: "a", RTT: time.Duration(i+1) * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		if err := s.Observe(Round{Miner: "a", Delivery: OnTime}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Observe(Probe{Miner: "a", Failed: true}); !errors.Is(err, ErrTooManySamples) {
		t.Fatalf("probe %d: %v, want ErrTooManySamples", cfg.MaxSamples+1, err)
	}
	if err := s.Observe(Round{Miner: "a", Delivery: Missed}); !errors.Is(err, ErrTooManySamples) {
		t.Fatalf("round %d: %v, want ErrTooManySamples", cfg.MaxSamples+1, err)
	}
	if err := s.Observe(Probe{Epoch: 1, Miner: "a", Failed: true}); err != nil {
		t.Fatalf("a probe in the next epoch: %v", err)
	}
}

// TestMillionMinerIDsBounded: a million distinct ids in one epoch, then
// another million in each of the next epochs, leave at most MaxMiners
// held, in bounded memory and time, and the miners that keep being
// observed keep their records and weights.
func TestMillionMinerIDsBounded(t *testing.T) {
	cfg := DefaultConfig()
	s := mustNew(t, cfg, 0)
	honest := []string{"honest-a", "honest-b", "honest-c"}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	refused := 0
	flood := 0
	for e := uint64(0); e < 6; e++ {
		for _, id := range honest {
			observeAll(t, s, honestEpoch(e, id, link{mbps(300), 10 * time.Millisecond}, 0.02))
		}
		for range 1_000_000 / 6 {
			flood++
			err := s.Observe(Seen{Epoch: e, Miner: "sybil-" + itoa(flood)})
			switch {
			case errors.Is(err, ErrTooManyMiners):
				refused++
			case err != nil:
				t.Fatal(err)
			}
		}
		w := mustWeights(t, s, e)
		if s.Len() > cfg.MaxMiners {
			t.Fatalf("epoch %d: %d miners held, over MaxMiners %d", e, s.Len(), cfg.MaxMiners)
		}
		for _, id := range honest {
			if m := weightOf(t, w, id); m.Weight < 0.3 {
				t.Fatalf("epoch %d: %s weighs %v among the sybils, want about 1/3", e, id, m.Weight)
			}
		}
	}
	took := time.Since(start)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// 4096 records of a few hundred bytes each, and their map: a few MB.
	// Unbounded, a million ids would hold hundreds of MB.
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 32<<20 {
		t.Errorf("heap grew by %d MB for %d ids", grew>>20, flood)
	}
	if refused < flood-6*cfg.MaxMiners {
		t.Errorf("only %d of %d sybil ids refused", refused, flood)
	}
	// Generous for a shared 2-core machine; the work is about 1e6 map
	// lookups and a few sorts of 4096 ids.
	if took > 20*time.Second {
		t.Errorf("a million ids took %v", took)
	}
	t.Logf("%d ids, %d refused, %d held, heap %+d KB, %v", flood, refused, s.Len(), (int64(after.HeapAlloc)-int64(before.HeapAlloc))>>10, took)
}

// TestCheatersEvictedLast: at the bound, an idle miner with a strike is
// kept while idle miners without one are evicted, so flooding ids cannot
// wash out a penalty.
func TestCheatersEvictedLast(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxMiners = 8
	s := mustNew(t, cfg, 0)
	observeAll(t, s, honestEpoch(0, "cheater", link{mbps(100), 10 * time.Millisecond}, 0.02)[:3])
	observeAll(t, s, []Observation{Verdict{Miner: "cheater", Kind: Cheat, Reason: "copy"}})
	for i := range 7 {
		observeAll(t, s, []Observation{Seen{Miner: minerName(i)}})
	}
	e := cfg.AliveExpiry + 1
	if _, err := s.Weights(e - 1); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := s.Observe(Seen{Epoch: e, Miner: "new-" + itoa(i)}); err != nil && !errors.Is(err, ErrTooManyMiners) {
			t.Fatal(err)
		}
	}
	w := mustWeights(t, s, e)
	if m := weightOf(t, w, "cheater"); m.Strikes != 1 || m.Gate != 0 {
		t.Fatalf("cheater's record: %+v, want its strike kept", m)
	}
	if s.Len() != cfg.MaxMiners {
		t.Fatalf("%d miners held, want %d", s.Len(), cfg.MaxMiners)
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}
