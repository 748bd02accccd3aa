package progress

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// statesByPass is States computed the slow way: one pass over the live
// reports.
func statesByPass(tr *Tracker, now time.Duration) []StateCount {
	var out []StateCount
	tr.Each(now, func(r Report) {
		i := slices.IndexFunc(out, func(c StateCount) bool { return c.Epoch == r.Epoch && c.Hash == r.StateHash })
		if i < 0 {
			i = len(out)
			out = append(out, StateCount{Epoch: r.Epoch, Hash: r.StateHash})
		}
		out[i].Holders++
		if r.Offers && r.Peer != tr.cfg.Self {
			out[i].Offers++
		}
	})
	slices.SortFunc(out, func(a, b StateCount) int {
		if c := cmp.Compare(a.Epoch, b.Epoch); c != 0 {
			return c
		}
		return bytes.Compare(a.Hash[:], b.Hash[:])
	})
	return out
}

// TestStatesMatchAPass drives trackers with random reports (peers that
// come, go silent and come back, move epochs, change hashes, send late
// and skewed reports, and more distinct states than the small table
// holds) and random queries, mostly forward in time and sometimes back,
// and checks that States always equals a fresh count of the live reports.
func TestStatesMatchAPass(t *testing.T) {
	const s = time.Second
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		expiry := time.Duration(5+rng.IntN(20)) * s
		tr := NewTracker(Config{Self: "peer-00", Expiry: expiry})
		hashes := 2 + rng.IntN(30)
		now := time.Hour
		for step := range 5000 {
			now += time.Duration(rng.IntN(500)) * time.Millisecond
			r := Report{
				Peer:      fmt.Sprintf("peer-%02d", rng.IntN(60)),
				Epoch:     uint64(rng.IntN(6)),
				Samples:   uint64(rng.IntN(3)),
				StateHash: [32]byte{byte(rng.IntN(hashes))},
				Offers:    rng.IntN(3) > 0,
				Time:      (now + time.Duration(rng.IntN(int(2*expiry/time.Millisecond)))*time.Millisecond - expiry).Milliseconds(),
			}
			if rng.IntN(10) == 0 {
				r.StateHash = [32]byte{}
			}
			_ = tr.Observe(now, r) // stale and future ones are refused
			if rng.IntN(7) == 0 {
				at := now
				if rng.IntN(5) == 0 {
					at -= time.Duration(rng.IntN(int(2 * expiry)))
				}
				if rng.IntN(5) == 0 {
					at += time.Duration(rng.IntN(int(2 * expiry))) // and past every report: all expire
				}
				got, want := tr.States(at, nil), statesByPass(tr, at)
				if !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
					t.Fatalf("seed %d step %d at %v: States\n%v\nwant\n%v", seed, step, at, got, want)
				}
				if at > now {
					now = at
				}
			}
		}
	}
}
