package p2p

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/allreduce"
)

// noneCodec sends exact float32.
var noneCodec, _ = allreduce.CodecByID(allreduce.CodecNone)

// contributes reports whether a member in role r sends its vector.
func contributes(r allreduce.Role) bool { return r != allreduce.RoleAux }

// roundConfig builds a config with equal spans for g.
func roundConfig(t testing.TB, g allreduce.Group, n, part int, c allreduce.Codec) allreduce.RoundConfig {
	t.Helper()
	reduces := make([]bool, len(g.Members))
	contrib := make([]bool, len(g.Members))
	for i, m := range g.Members {
		reduces[i], contrib[i] = m.Role.Reduces(), contributes(m.Role)
	}
	spans, err := allreduce.SpansForRoles(n, make([]float64, len(g.Members)), reduces, contrib)
	if err != nil {
		t.Fatal(err)
	}
	return allreduce.RoundConfig{
		Group: g, Len: n, Spans: spans, PartSize: part, Codec: c,
		PartTimeout: 2 * time.Second, ReduceTimeout: 5 * time.Second, RoundTimeout: 10 * time.Second,
	}
}

func randomVectors(rng *rand.Rand, g allreduce.Group, n int) [][]float32 {
	vecs := make([][]float32, len(g.Members))
	for i, m := range g.Members {
		if contributes(m.Role) {
			vecs[i] = make([]float32, n)
			for j := range vecs[i] {
				vecs[i][j] = float32(rng.NormFloat64() * 3)
			}
		}
	}
	return vecs
}

// exactMean is the weighted mean over set, in float64.
func exactMean(g allreduce.Group, vecs [][]float32, set []int, n int) []float64 {
	mean := make([]float64, n)
	var total float64
	for _, c := range set {
		total += g.Members[c].Weight
		for j := range mean {
			mean[j] += g.Members[c].Weight * float64(vecs[c][j])
		}
	}
	for j := range mean {
		mean[j] /= total
	}
	return mean
}

// checkLoopback asserts that the members in ok hold the same contributors
// (want) and bitwise the same vector, within the codec's bound of the
// exact weighted mean.
func checkLoopback(t *testing.T, g allreduce.Group, vecs [][]float32, res []allreduce.Result, ok, want []int, codec allreduce.Codec) {
	t.Helper()
	mean := exactMean(g, vecs, want, len(vecs[want[0]]))
	var bound float64
	for _, c := range want {
		bound = math.Max(bound, codec.Bound(vecs[c]))
	}
	var first []float32
	for _, i := range ok {
		if fmt.Sprint(res[i].Contributors) != fmt.Sprint(want) {
			t.Fatalf("member %d: contributors %v, want %v", i, res[i].Contributors, want)
		}
		if g.Members[i].Role == allreduce.RoleAux {
			continue
		}
		if first == nil {
			first = res[i].Vector
			for j, x := range first {
				tol := 2.1*bound + 1e-6*math.Abs(mean[j]) + 1e-30
				if d := math.Abs(float64(x) - mean[j]); d > tol {
					t.Fatalf("member %d: element %d = %v, exact mean %v (diff %g > tol %g, %s)", i, j, x, mean[j], d, tol, codec.ID())
				}
			}
			continue
		}
		for j := range first {
			if math.Float32bits(first[j]) != math.Float32bits(res[i].Vector[j]) {
				t.Fatalf("member %d: element %d = %v, another member holds %v", i, j, res[i].Vector[j], first[j])
			}
		}
	}
}

func allMembers(g allreduce.Group) []int {
	var all []int
	for i := range g.Members {
		all = append(all, i)
	}
	return all
}

// contributorsOf lists g's contributing members, leaving out those in
// except.
func contributorsOf(g allreduce.Group, except ...int) []int {
	var c []int
	for i, m := range g.Members {
		if contributes(m.Role) && !slices.Contains(except, i) {
			c = append(c, i)
		}
	}
	return c
}

// except is all without x.
func except(all []int, x int) []int {
	var out []int
	for _, i := range all {
		if i != x {
			out = append(out, i)
		}
	}
	return out
}

// minerTimeouts sets cfg's timeouts the way node/miner does for a round of
// the given length.
func minerTimeouts(cfg *allreduce.RoundConfig, round time.Duration) {
	cfg.PartTimeout, cfg.ReduceTimeout, cfg.RoundTimeout = allreduce.TimeoutsFor(round)
}
