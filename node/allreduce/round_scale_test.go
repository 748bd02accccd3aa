package allreduce

import (
	"errors"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// TestRoundScale: 1000 peers in 63 groups of 16 (the last 8), a quarter of them clients, share one
// simulated network for several rounds, 5% of peers crashing at random
// times in each. Every round ends on every survivor by its deadline, either
// with the exact mean of the agreed contributors (a dead owner's span is
// re-reduced by a replacement) or with ErrSpanLost when an owner died after
// the agreement with its own contribution agreed, which no one can replace.
func TestRoundScale(t *testing.T) {
	if testing.Short() {
		t.Skip("scale simulation")
	}
	const peers, groupSize, rounds, n = 1000, 16, 3, 4096
	rng := rand.New(rand.NewSource(42))
	codec := codecs[CodecNone]
	start := time.Now()
	var ok, failed, excluded int
	for round := 0; round < rounds; round++ {
		net := sim.New(rng)
		var groups []*simGroup
		var cfgs []RoundConfig
		var allVecs [][][]float32
		for first := 0; first < peers; first += groupSize {
			size := min(groupSize, peers-first)
			g := Group{}
			for i := 0; i < size; i++ {
				role := RoleFull
				if i%4 == 3 {
					role = RoleClient // clients' crashes exclude them; owners' move their span
				}
				g.Members = append(g.Members, Member{ID: fmt.Sprintf("r%d-p%d", round, first+i), Role: role, Weight: float64(1 + rng.Intn(64))})
			}
			cfg := roundConfig(t, g, n, 64, codec)
			cfg.PartTimeout, cfg.ReduceTimeout, cfg.RoundTimeout = 300*time.Millisecond, time.Second, 2*time.Second
			vecs := randomVectors(rng, g, n)
			link := sim.Link{Uplink: 1e6 + rng.Float64()*1e7, Downlink: 1e7, Latency: time.Duration(5+rng.Intn(50)) * time.Millisecond}
			groups = append(groups, newSimGroup(t, net, cfg, vecs, link))
			cfgs, allVecs = append(cfgs, cfg), append(allVecs, vecs)
		}
		for _, sg := range groups {
			for _, id := range sg.ids {
				if rng.Float64() < 0.05 {
					_ = net.Crash(id, time.Duration(rng.Int63n(int64(60*time.Millisecond))))
				}
			}
			sg.start()
		}
		net.RunUntilIdle()
		for k, sg := range groups {
			var alive []int
			for i, id := range sg.ids {
				if !net.Crashed(id) {
					alive = append(alive, i)
				}
			}
			if d := sg.lastDone(); d > cfgs[k].RoundTimeout+testTick {
				t.Fatalf("round %d group %d ended at %v, past its deadline", round, k, d)
			}
			// An owner dying mid all-gather may leave some survivors with
			// the whole mean and others without: those that succeed must
			// agree, the rest must fail cleanly.
			var done []int
			var res Result
			for _, i := range alive {
				r, err := sg.rounds[i].Result()
				switch {
				case err == nil:
					done, res = append(done, i), r
				case !errors.Is(err, ErrSpanLost):
					t.Fatalf("round %d group %d member %d: %v", round, k, i, err)
				}
			}
			if len(done) < len(alive) {
				failed++
			}
			if len(done) == 0 {
				continue
			}
			checkAgreed(t, cfgs[k].Group, allVecs[k], sg.rounds, done, res.Contributors, codec)
			excluded += len(contributorsOf(cfgs[k].Group)) - len(res.Contributors)
			ok++
		}
	}
	t.Logf("%d rounds of %d peers: %d group rounds exact on some survivors, %d with clean ErrSpanLost on some, %d contributors excluded; wall %v",
		rounds, peers, ok, failed, excluded, time.Since(start))
}
