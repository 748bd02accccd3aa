package allreduce

import (
	"math/rand"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// TestRoundPipelineNearBound: reduce-scatter and all-gather overlap, so a
// round over simulated links takes close to the time its busiest link
// needs, not that plus a wait between the phases. With one member at a
// quarter of the others' bandwidth and spans sized by bandwidth, the slow
// member uploads its values while it downloads the means; done in turns,
// that takes about twice its link time.
func TestRoundPipelineNearBound(t *testing.T) {
	const n, part = 1 << 20, 1 << 14 // 4 MiB of float32, 64 KiB parts
	const fast = 25e6                // bytes/s
	cases := []struct {
		name  string
		rates []float64
	}{
		{"equal", []float64{fast, fast, fast, fast}},
		{"one slow", []float64{fast, fast, fast, fast / 4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := Group{}
			reduces := make([]bool, len(c.rates))
			contributes := make([]bool, len(c.rates))
			for i := range c.rates {
				g.Members = append(g.Members, Member{ID: string(rune('a' + i)), Role: RoleFull, Weight: float64(1 + i)})
				reduces[i], contributes[i] = true, true
			}
			spans, err := SpansForRoles(n, c.rates, reduces, contributes)
			if err != nil {
				t.Fatal(err)
			}
			cfg := RoundConfig{Group: g, Len: n, Spans: spans, PartSize: part, Codec: noneCodec{},
				RoundTimeout: time.Minute}
			rng := rand.New(rand.NewSource(3))
			vecs := randomVectors(rng, g, n)
			net := sim.New(rng)
			links := make([]sim.Link, len(c.rates))
			for i, b := range c.rates {
				links[i] = sim.Link{Uplink: b, Downlink: b, Latency: 20 * time.Millisecond}
			}
			sg := newSimGroupLinks(t, net, cfg, vecs, links)
			sg.start()
			net.RunUntilIdle()
			if len(sg.rejected) > 0 {
				t.Fatalf("rejected %v", sg.rejected[0])
			}
			checkAgreed(t, g, vecs, sg.rounds, allMembers(g), contributorsOf(g), noneCodec{})
			// The busiest link's bytes one way: each member sends its
			// values outside its span and the mean of its span to the
			// others, and receives as much.
			var bound time.Duration
			for i, s := range spans {
				oneWay := float64(4*(n-s.Len()+(len(spans)-1)*s.Len())) / c.rates[i]
				bound = max(bound, time.Duration(oneWay*float64(time.Second)))
			}
			took := sg.lastDone()
			t.Logf("%s: round %v, busiest link %v (%.2f of it)", c.name, took, bound, bound.Seconds()/took.Seconds())
			if took > bound*5/4 {
				t.Errorf("round took %v, over 1.25× the busiest link's %v: the phases do not overlap", took, bound)
			}
		})
	}
}

// TestRoundUsesOnlyAgreedSet: gathered parts over a set the agreement does
// not pick never end in a result. Client h crashes before sending, so the
// agreed set leaves it out; span 1's owner b meanwhile sends member a a
// bogus part averaged "over everyone" (which a takes before agreement, as
// it would a real optimistic part) and one over a set of {a}. Both are
// dropped at agreement and a ends with the exact mean of the others.
func TestRoundUsesOnlyAgreedSet(t *testing.T) {
	bogus := codecs[CodecNone].Encode(nil, make([]float32, 256))
	for i := range bogus {
		bogus[i] = 0x3f // 0.75-ish floats: finite, and wrong
	}
	g, vecs, sg, _ := runFault(t, func(net *sim.Network, sg *simGroup) {
		net.Crash("h", 0)
		_, _ = net.After("b", time.Millisecond, func(time.Duration) {
			for _, set := range [][]int{contributorsOf(faultGroup()), {0}} {
				m := PartMsg{Phase: AllGather, Span: 1, Part: 0, Set: SetHash(set), Payload: bogus}
				_ = net.Send("b", "a", sim.Message{Size: m.Size(), Payload: m})
			}
		})
	})
	want := except(contributorsOf(g), 7)
	var ok []int
	for i := range 7 {
		ok = append(ok, i)
	}
	checkAgreed(t, g, vecs, sg.rounds, ok, want, codecs[CodecNone])
}
