package allreduce

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// checkSources recomputes every part member i holds, at the range
// CheckRange picks with pick, from the contributors' committed chunks,
// and returns the members whose parts differ from the recomputation.
func checkSources(t *testing.T, r *Round, contribs []*Contribution, pick int) []int {
	t.Helper()
	cfg := r.Config()
	res, err := r.Result()
	if err != nil {
		t.Fatal(err)
	}
	l := contribs[res.Contributors[0]].Layout()
	var liars []int
	for _, s := range r.Sources() {
		lo, hi := cfg.CheckRange(s.Lo, s.Hi, pick+s.Part)
		first, count := lo/l.Chunk, (hi-lo+l.Chunk-1)/l.Chunk
		vals := make([][]float32, len(res.Contributors))
		for j, c := range res.Contributors {
			b, _, err := contribs[c].Chunks(first, count)
			if err != nil {
				t.Fatal(err)
			}
			v, err := l.DecodeChunks(first, count, b)
			if err != nil {
				t.Fatal(err)
			}
			vals[j] = v[lo-first*l.Chunk : hi-first*l.Chunk]
		}
		want, err := cfg.Recompute(res.Contributors, vals)
		if err != nil {
			t.Fatal(err)
		}
		got := res.Vector[lo:hi]
		for x := range want {
			if math.Float32bits(want[x]) != math.Float32bits(got[x]) {
				if !slices.Contains(liars, s.From) {
					liars = append(liars, s.From)
				}
				break
			}
		}
	}
	return liars
}

// Issue 17: in a committed round, every member recomputes a sample of
// each part it received from the contributors' committed chunks; with
// honest owners the bits agree for every rule and codec (the owner and the
// check run the same deterministic rule), and an owner that shifts its
// span's mean is named by every member that takes a result.
func TestRecomputeNamesLyingOwner(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for _, agg := range []Aggregation{Mean, TrimmedMean, CenteredClip} {
		for _, codecName := range []string{"none", "int8", "bf16"} {
			for _, liar := range []int{-1, 1} {
				name := fmt.Sprintf("%v/%s/liar%d", agg, codecName, liar)
				t.Run(name, func(t *testing.T) {
					g := Group{Members: []Member{
						{ID: "a", Role: RoleFull, Weight: 3}, {ID: "b", Role: RoleFull, Weight: 5},
						{ID: "c", Role: RoleFull, Weight: 2}, {ID: "d", Role: RoleFull, Weight: 4},
						{ID: "e", Role: RoleClient, Weight: 1},
					}}
					codec, _ := ParseCodec(codecName)
					plain := roundConfig(t, g, 9000, 1024, codec)
					plain.Aggregation = agg
					vecs := randomVectors(rng, g, plain.Len)
					cfg, contribs, adjust := commitBase(t, plain, vecs, 256, false)
					net := sim.New(rng)
					sg := newSimGroupLinks(t, net, cfg, vecs, sameLinks(len(g.Members), sim.Link{Latency: time.Millisecond}), adjust)
					shifted := 0
					sg.rewrite = func(from int, o Outgoing) Outgoing {
						m, ok := o.Msg.(PartMsg)
						if from != liar || !ok || m.Phase != AllGather || m.Part != 0 {
							return o
						}
						// The liar adds 0.5 to the first value of its
						// span's first part, re-encoded with the codec.
						sp := cfg.Spans[m.Span]
						vals := make([]float32, min(cfg.PartSize, sp.End-sp.Begin))
						if err := codec.Decode(vals, m.Payload); err != nil {
							t.Fatal(err)
						}
						vals[0] += 0.5
						m.Payload = codec.Encode(nil, vals)
						o.Msg = m
						shifted++
						return o
					}
					sg.start()
					net.RunUntilIdle()
					for i, r := range sg.rounds {
						if i == liar {
							continue
						}
						got := checkSources(t, r, contribs, 0)
						switch {
						case liar < 0 && len(got) > 0:
							t.Errorf("member %d: honest owners %v differ from the recomputation", i, got)
						case liar >= 0 && !slices.Equal(got, []int{liar}):
							t.Errorf("member %d names %v, want the liar %d (%d parts shifted)", i, got, liar, shifted)
						}
					}
				})
			}
		}
	}
}
