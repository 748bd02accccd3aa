package allreduce

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// simGroup drives one group of Rounds over a sim.Network: Outgoing becomes
// sim.Send, deliveries become Receive, and a timer per member ticks.
type simGroup struct {
	net      *sim.Network
	rounds   []*Round
	ids      []sim.ID
	rejected []error // every rejected message, for tests that expect some
	tick     time.Duration
	doneAt   []time.Duration // when each round ended, -1 while running
	// rewrite, if set, replaces each message a member sends: a test's
	// misbehaving member.
	rewrite func(from int, o Outgoing) Outgoing
}

const testTick = 10 * time.Millisecond

// newSimGroup adds the group's members to net with the given link and
// builds their rounds from base (Self, Vector filled per member).
func newSimGroup(t testing.TB, net *sim.Network, base RoundConfig, vecs [][]float32, link sim.Link) *simGroup {
	t.Helper()
	links := make([]sim.Link, len(base.Group.Members))
	for i := range links {
		links[i] = link
	}
	return newSimGroupLinks(t, net, base, vecs, links)
}

// newSimGroupLinks is newSimGroup with one link per member; adjust, if
// given, changes each member's config before its round is built.
func newSimGroupLinks(t testing.TB, net *sim.Network, base RoundConfig, vecs [][]float32, links []sim.Link, adjust ...func(i int, cfg *RoundConfig)) *simGroup {
	t.Helper()
	g := &simGroup{net: net, tick: testTick}
	for i, m := range base.Group.Members {
		cfg := base
		cfg.Self, cfg.Vector = i, vecs[i]
		for _, f := range adjust {
			f(i, &cfg)
		}
		r, err := NewRound(cfg)
		if err != nil {
			t.Fatalf("NewRound(member %d): %v", i, err)
		}
		g.rounds = append(g.rounds, r)
		g.doneAt = append(g.doneAt, -1)
		g.ids = append(g.ids, sim.ID(m.ID))
	}
	for i := range g.rounds {
		i := i
		h := func(now time.Duration, from sim.ID, msg sim.Message) {
			out, err := g.rounds[i].Receive(now, base.Group.Index(string(from)), msg.Payload.(Msg))
			if err != nil {
				g.rejected = append(g.rejected, err)
			}
			g.send(i, out)
			g.noteDone(i, now)
		}
		if err := net.AddPeer(g.ids[i], links[i], h); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// start starts every round at the network's current time.
func (g *simGroup) start() {
	for i, r := range g.rounds {
		g.send(i, r.Start(g.net.Now()))
		g.schedule(i)
	}
}

func (g *simGroup) schedule(i int) {
	_, _ = g.net.After(g.ids[i], g.tick, func(now time.Duration) {
		r := g.rounds[i]
		g.send(i, r.Tick(now))
		g.noteDone(i, now)
		if !r.Done() {
			g.schedule(i)
		}
	})
}

func (g *simGroup) noteDone(i int, now time.Duration) {
	if g.doneAt[i] < 0 && g.rounds[i].Done() {
		g.doneAt[i] = now
	}
}

// lastDone is when the last round that ended did so.
func (g *simGroup) lastDone() time.Duration {
	var last time.Duration
	for _, d := range g.doneAt {
		last = max(last, d)
	}
	return last
}

func (g *simGroup) send(from int, out []Outgoing) {
	for _, o := range out {
		if g.rewrite != nil {
			o = g.rewrite(from, o)
		}
		_ = g.net.Send(g.ids[from], g.ids[o.To], sim.Message{Size: o.Msg.Size(), Payload: o.Msg})
	}
}

// randomRoundGroup returns a group of n members with random roles (at least one
// reducer and one contributor) and weights.
func randomRoundGroup(rng *rand.Rand, size int, prefix string) Group {
	var g Group
	for i := 0; i < size; i++ {
		m := Member{ID: fmt.Sprintf("%s%d", prefix, i), Role: RoleFull}
		switch x := rng.Intn(10); {
		case x == 0 && i > 0:
			m.Role = RoleAux
		case x <= 2 && i > 0:
			m.Role = RoleClient
		}
		if m.Role != RoleAux {
			m.Weight = float64(1 + rng.Intn(100))
		}
		g.Members = append(g.Members, m)
	}
	return g
}

// roundConfig builds a config with equal spans for g.
func roundConfig(t testing.TB, g Group, n, part int, c Codec) RoundConfig {
	t.Helper()
	reduces := make([]bool, len(g.Members))
	contributes := make([]bool, len(g.Members))
	for i, m := range g.Members {
		reduces[i], contributes[i] = m.Role.Reduces(), m.Role.contributes()
	}
	spans, err := SpansForRoles(n, make([]float64, len(g.Members)), reduces, contributes)
	if err != nil {
		t.Fatal(err)
	}
	return RoundConfig{
		Group: g, Len: n, Spans: spans, PartSize: part, Codec: c,
		PartTimeout: 2 * time.Second, ReduceTimeout: 5 * time.Second, RoundTimeout: 10 * time.Second,
	}
}

func randomVectors(rng *rand.Rand, g Group, n int) [][]float32 {
	vecs := make([][]float32, len(g.Members))
	for i, m := range g.Members {
		if m.Role.contributes() {
			vecs[i] = make([]float32, n)
			for j := range vecs[i] {
				vecs[i][j] = float32(rng.NormFloat64() * 3)
			}
		}
	}
	return vecs
}

// exactMean is the weighted mean over set, in float64.
func exactMean(g Group, vecs [][]float32, set []int, n int) []float64 {
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

// checkAgreed asserts that every member in ok finished with the same
// contributors (want) and the same vector, within tol of their exact mean.
func checkAgreed(t *testing.T, g Group, vecs [][]float32, rounds []*Round, ok []int, want []int, codec Codec) {
	t.Helper()
	n := len(rounds[ok[0]].cfg.Vector)
	if n == 0 {
		n = rounds[ok[0]].cfg.Len
	}
	mean := exactMean(g, vecs, want, n)
	var bound float64
	for _, c := range want {
		bound = math.Max(bound, codec.Bound(vecs[c]))
	}
	var first []float32
	for _, i := range ok {
		res, err := rounds[i].Result()
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		if fmt.Sprint(res.Contributors) != fmt.Sprint(want) {
			t.Fatalf("member %d: contributors %v, want %v", i, res.Contributors, want)
		}
		if g.Members[i].Role == RoleAux {
			continue
		}
		if first == nil {
			first = res.Vector
			for j, x := range first {
				tol := 2.1*bound + 1e-6*math.Abs(mean[j]) + 1e-30
				if d := math.Abs(float64(x) - mean[j]); d > tol {
					t.Fatalf("member %d: element %d = %v, exact mean %v (diff %g > tol %g, %s)", i, j, x, mean[j], d, tol, codec.ID())
				}
			}
			continue
		}
		// Exact: each span's mean is computed once, by its owner, and every
		// member decodes the same bytes of it.
		for j := range first {
			if math.Float32bits(first[j]) != math.Float32bits(res.Vector[j]) {
				t.Fatalf("member %d: element %d = %v, another member holds %v", i, j, res.Vector[j], first[j])
			}
		}
	}
}

func allMembers(g Group) []int {
	var all []int
	for i := range g.Members {
		all = append(all, i)
	}
	return all
}

func contributorsOf(g Group, except ...int) []int {
	var c []int
next:
	for i, m := range g.Members {
		for _, e := range except {
			if e == i {
				continue next
			}
		}
		if m.Role.contributes() {
			c = append(c, i)
		}
	}
	return c
}

// TestRoundPropertyMean: random groups, lengths, weights, roles and codecs
// all end with every member holding the same weighted mean of everyone.
func TestRoundPropertyMean(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	codecNames := []string{"none", "none", "fp16", "bf16", "int8"}
	for trial := 0; trial < 60; trial++ {
		size := 2 + rng.Intn(31)
		g := randomRoundGroup(rng, size, fmt.Sprintf("t%d-", trial))
		n := 1 + rng.Intn(3000)
		if trial%4 == 0 {
			n = 1 + rng.Intn(size)
		}
		codec, _ := ParseCodec(codecNames[rng.Intn(len(codecNames))])
		cfg := roundConfig(t, g, n, 1+rng.Intn(300), codec)
		vecs := randomVectors(rng, g, n)
		net := sim.New(rng)
		sg := newSimGroup(t, net, cfg, vecs, sim.Link{Uplink: 1e7, Downlink: 1e7, Latency: 5 * time.Millisecond})
		sg.start()
		net.RunUntilIdle()
		if len(sg.rejected) > 0 {
			t.Fatalf("trial %d: rejected %v", trial, sg.rejected[0])
		}
		checkAgreed(t, g, vecs, sg.rounds, allMembers(g), contributorsOf(g), codec)
		if d := sg.lastDone(); d > cfg.RoundTimeout {
			t.Fatalf("trial %d: finished at %v, past the deadline", trial, d)
		}
	}
}
