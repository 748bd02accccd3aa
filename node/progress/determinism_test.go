package progress

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// answers is everything a Tracker says at one now.
type answers struct {
	Live       []Report
	Swarm      uint64
	Behind     [3]bool
	Peers      [][]string
	Samples    []float64
	Rates      []float64
	Ready      []bool
	ETA        []time.Duration
	Majority   [][32]byte
	Dissenters [][]string
	Donors     [][]string
}

func ask(tr *Tracker, now time.Duration, epochs int) answers {
	a := answers{Live: tr.Live(now), Swarm: tr.SwarmEpoch(now)}
	for i := range a.Behind {
		a.Behind[i] = tr.Behind(now, uint64(i))
	}
	for e := range uint64(epochs) {
		s, r := tr.Accumulated(now, e)
		maj, dis := tr.HashAgreement(now, e)
		a.Peers = append(a.Peers, tr.Peers(now, e))
		a.Samples, a.Rates = append(a.Samples, s), append(a.Rates, r)
		a.Ready = append(a.Ready, tr.Ready(now, e))
		a.ETA = append(a.ETA, tr.EstimateReady(now, e))
		a.Majority, a.Dissenters = append(a.Majority, maj), append(a.Dissenters, dis)
		a.Donors = append(a.Donors, tr.Donors(now, e))
	}
	return a
}

// swarmReports draws several reports per peer, with repeats and exact
// (Epoch, Samples, Time) ties that differ elsewhere, all live at now.
func swarmReports(rng *rand.Rand, peers, epochs int, now time.Duration) []Report {
	hashes := [][32]byte{{}, {1}, {2}, {3}}
	var rs []Report
	for p := range peers {
		for range 1 + rng.IntN(5) {
			r := Report{
				Peer:          fmt.Sprintf("peer-%02d", p),
				Epoch:         uint64(rng.IntN(epochs)),
				Samples:       uint64(rng.IntN(4)) * 100,
				SamplesPerSec: float64(rng.IntN(3)) * 12.5,
				StateHash:     hashes[rng.IntN(len(hashes))],
				Offers:        rng.IntN(2) == 0,
				Time:          (now - time.Duration(rng.IntN(9000))*time.Millisecond).Milliseconds(),
			}
			if rng.IntN(4) == 0 {
				r.Time = (now + time.Second).Milliseconds() // a clock slightly ahead
			}
			rs = append(rs, r)
			if rng.IntN(3) == 0 {
				tie := r
				tie.Offers, tie.SamplesPerSec = !r.Offers, r.SamplesPerSec+1
				rs = append(rs, tie, r) // an exact tie, and a gossip echo
			}
		}
	}
	return rs
}

// TestDeterministicUnderReordering feeds the same reports in different
// orders to different Trackers: all must answer alike, and hold per peer
// the greatest report in the documented order.
func TestDeterministicUnderReordering(t *testing.T) {
	const now = 100 * time.Second
	const epochs = 4
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 7))
		rs := swarmReports(rng, 1+rng.IntN(40), epochs, now)
		cfg := Config{Self: "peer-00", TargetSamples: 1 + uint64(rng.IntN(3000)), Expiry: 10 * time.Second}

		want := map[string]Report{}
		for _, r := range rs {
			if held, ok := want[r.Peer]; !ok || newer(r, held) {
				want[r.Peer] = r
			}
		}
		var first []answers
		for perm := range 4 {
			order := rng.Perm(len(rs))
			tr := NewTracker(cfg)
			for _, i := range order {
				mustObserve(t, tr, now, rs[i])
			}
			if live := tr.Live(now); len(live) != len(want) {
				t.Fatalf("seed %d: %d live, want %d", seed, len(live), len(want))
			} else {
				for _, r := range live {
					if r != want[r.Peer] {
						t.Fatalf("seed %d: holds %+v, want %+v", seed, r, want[r.Peer])
					}
				}
			}
			var got []answers
			for _, q := range []time.Duration{now, now + 3*time.Second, now + 8*time.Second, now + 11*time.Second} {
				got = append(got, ask(tr, q, epochs))
			}
			if perm == 0 {
				first = got
			} else if !reflect.DeepEqual(got, first) {
				t.Fatalf("seed %d: order %d answers differently:\n got %+v\nwant %+v", seed, perm, got, first)
			}
		}
	}
}

// TestHonestMajorityDecides: whatever epochs a minority announces, higher
// or lower, the swarm epoch is the honest majority's.
func TestHonestMajorityDecides(t *testing.T) {
	const now = time.Hour
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		honest := 1 + rng.IntN(20)
		liars := rng.IntN(honest) // strictly fewer
		epoch := uint64(rng.IntN(1000))
		var rs []Report
		for i := range honest {
			rs = append(rs, rep(fmt.Sprintf("h%d", i), epoch, 0, now))
		}
		for i := range liars {
			rs = append(rs, rep(fmt.Sprintf("l%d", i), rng.Uint64(), 0, now))
		}
		tr := NewTracker(Config{})
		for _, i := range rng.Perm(len(rs)) {
			mustObserve(t, tr, now, rs[i])
		}
		if got := tr.SwarmEpoch(now); got != epoch {
			t.Fatalf("%d honest at %d, %d liars: SwarmEpoch = %d", honest, epoch, liars, got)
		}
	}
}
