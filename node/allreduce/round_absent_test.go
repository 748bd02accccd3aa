package allreduce

import (
	"errors"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// minerTimeouts sets cfg's timeouts the way node/miner does for a round of
// the given length.
func minerTimeouts(cfg *RoundConfig, round time.Duration) {
	cfg.PartTimeout, cfg.ReduceTimeout, cfg.RoundTimeout = TimeoutsFor(round)
}

// absentRound runs a group of four full members, as the miner forms them,
// in which member absent crashes at crashAt (0: it never sends anything).
func absentRound(t *testing.T, round time.Duration, absent int, crashAt time.Duration) (Group, [][]float32, *simGroup, RoundConfig) {
	t.Helper()
	rng := rand.New(rand.NewSource(int64(absent) + int64(round)))
	g := Group{}
	for i := range 4 {
		g.Members = append(g.Members, Member{ID: fmt.Sprintf("m%d", i), Role: RoleFull, Weight: float64(1 + rng.Intn(100))})
	}
	cfg := roundConfig(t, g, 4*35*256, 256, codecs[CodecNone])
	minerTimeouts(&cfg, round)
	vecs := randomVectors(rng, g, cfg.Len)
	net := sim.New(rng)
	sg := newSimGroup(t, net, cfg, vecs, sim.Link{Uplink: 1e7, Downlink: 1e7, Latency: 5 * time.Millisecond})
	_ = net.Crash(sg.ids[absent], crashAt)
	sg.start()
	net.RunUntilIdle()
	return g, vecs, sg, cfg
}

// TestRoundAbsentMember: with the miner's timeouts, a member of a formed
// group that never sends anything (it gave up in matchmaking, or its
// process is dead) leaves the three survivors with the exact mean of the
// three, well before the round's deadline, whichever member it is and
// however long the round.
func TestRoundAbsentMember(t *testing.T) {
	for _, round := range []time.Duration{60 * time.Second, 5 * time.Second, time.Second} {
		for absent := range 4 {
			t.Run(fmt.Sprintf("%v/absent-%d", round, absent), func(t *testing.T) {
				g, vecs, sg, _ := absentRound(t, round, absent, 0)
				for i, r := range sg.rounds {
					if i == absent {
						continue
					}
					if _, err := r.Result(); err != nil {
						t.Fatalf("member %d: %v", i, err)
					}
				}
				checkAgreed(t, g, vecs, sg.rounds, except(allMembers(g), absent), contributorsOf(g, absent), codecs[CodecNone])
				if d := sg.lastDone(); d > round/2 {
					t.Fatalf("survivors finished at %v of a %v round, want by half of it", d, round)
				}
				t.Logf("survivors finished at %v of %v", sg.lastDone(), round)
			})
		}
	}
}

// TestRoundPropertyAbsent: random groups of 3 to 8 with random roles,
// weights, links and round lengths, under the miner's timeouts, with one or
// two members absent from the start or crashing at a random time. Every
// survivor ends by the deadline, with the exact mean of the contributors
// its result names (the same on every survivor that has one) or a clean
// ErrSpanLost or ErrNoContributors. When every missing member was absent
// from the start and a reducer and a contributor survive, every survivor
// has the exact mean of all surviving contributors by seven eighths of
// the round (TimeoutsFor's budget: a lost aux owner, which sends no parts,
// is found out at five eighths).
func TestRoundPropertyAbsent(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	rounds := []time.Duration{time.Second, 5 * time.Second, 60 * time.Second}
	var exact, clean int
	for trial := range 300 {
		size := 3 + rng.Intn(6)
		g := randomRoundGroup(rng, size, fmt.Sprintf("a%d-", trial))
		n := 1 + rng.Intn(4000)
		cfg := roundConfig(t, g, n, 1+rng.Intn(400), codecs[CodecNone])
		round := rounds[rng.Intn(len(rounds))]
		minerTimeouts(&cfg, round)
		vecs := randomVectors(rng, g, n)
		net := sim.New(rng)
		// Latency up to a hundredth of the round (30 ms at most), so that
		// the few trips a re-reduction takes fit the budget's last eighth.
		links := make([]sim.Link, size)
		for i := range links {
			links[i] = sim.Link{Uplink: 1e6 + rng.Float64()*1e8, Downlink: 1e6 + rng.Float64()*1e8,
				Latency: time.Millisecond + time.Duration(rng.Int63n(int64(min(round/100, 30*time.Millisecond))))}
		}
		sg := newSimGroupLinks(t, net, cfg, vecs, links)
		missing := map[int]time.Duration{} // when each missing member crashes
		for range 1 + rng.Intn(2) {
			x := rng.Intn(size)
			at := time.Duration(0)
			if rng.Intn(2) == 0 {
				at = time.Duration(rng.Int63n(int64(round)))
			}
			if prev, ok := missing[x]; !ok || at < prev {
				missing[x] = at
			}
			_ = net.Crash(sg.ids[x], at)
		}
		fromStart := true
		for _, at := range missing {
			fromStart = fromStart && at == 0
		}
		sg.start()
		net.RunUntilIdle()
		var survivors, done []int
		var res Result
		for i, r := range sg.rounds {
			if _, ok := missing[i]; ok {
				continue
			}
			survivors = append(survivors, i)
			if !r.Done() || sg.doneAt[i] > round+testTick {
				t.Fatalf("trial %d: member %d not done by the %v deadline (done %v at %v)", trial, i, round, r.Done(), sg.doneAt[i])
			}
			got, err := r.Result()
			switch {
			case err == nil:
				done, res = append(done, i), got
			case !errors.Is(err, ErrSpanLost) && !errors.Is(err, ErrNoContributors):
				t.Fatalf("trial %d: member %d: unclean error %v", trial, i, err)
			}
		}
		var alive []int
		reducerAlive := false
		for _, i := range survivors {
			reducerAlive = reducerAlive || g.Members[i].Role.Reduces()
			if g.Members[i].Role.contributes() {
				alive = append(alive, i)
			}
		}
		if fromStart && reducerAlive && len(alive) > 0 {
			if len(done) != len(survivors) {
				t.Fatalf("trial %d: group %v without %v: %d of %d survivors have a result", trial, g.Members, missing, len(done), len(survivors))
			}
			checkAgreed(t, g, vecs, sg.rounds, done, alive, codecs[CodecNone])
			if d := sg.lastDone(); d > round*7/8 {
				t.Fatalf("trial %d: group %v without %v: survivors finished at %v of %v", trial, g.Members, missing, d, round)
			}
		}
		if len(done) > 0 {
			checkAgreed(t, g, vecs, sg.rounds, done, res.Contributors, codecs[CodecNone])
			exact++
		}
		if len(done) < len(survivors) {
			clean++
		}
	}
	t.Logf("300 rounds: %d exact on some survivors, %d with a clean failure on some", exact, clean)
}
