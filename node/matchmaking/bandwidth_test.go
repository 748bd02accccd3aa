package matchmaking

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/sim"
)

// TestSpanBandwidths: what each kind of claim counts as when spans are cut.
func TestSpanBandwidths(t *testing.T) {
	full := func(bw ...float64) []Member {
		ms := make([]Member, len(bw))
		for i, b := range bw {
			ms[i] = Member{ID: fmt.Sprint(i), Role: Full, Weight: 1, Bandwidth: b}
		}
		return ms
	}
	withRole := func(ms []Member, i int, r Role) []Member {
		ms[i].Role = r
		if r == Aux {
			ms[i].Weight = 0
		}
		return ms
	}
	cases := []struct {
		name    string
		members []Member
		want    []float64
	}{
		{"nothing measured: equal spans", full(0, 0, 0), []float64{0, 0, 0}},
		{"honest rates pass", full(25e6, 6.25e6, 25e6, 25e6), []float64{25e6, 6.25e6, 25e6, 25e6}},
		{"an unmeasured reducer counts at the median", full(10e6, 0, 14e6), []float64{10e6, 10e6, 14e6}},
		{"one measured member does not take the vector", full(0, 0, 5e6, 0), []float64{5e6, 5e6, 5e6, 5e6}},
		{"a liar is capped at 1.5 times the median", full(25e6, 1.25e9, 25e6, 25e6), []float64{25e6, 37.5e6, 25e6, 25e6}},
		{"the lower median of two", full(25e6, 1.25e9), []float64{25e6, 37.5e6}},
		{"absurd claims are bounded first", full(1e300, 1e-300, 1e300), []float64{MaxClaim, MinClaim, MaxClaim}},
		{"an unmeasured client stays unmeasured", withRole(full(10e6, 0, 10e6), 1, Client), []float64{10e6, 0, 10e6}},
		{"a client's claim is capped too", withRole(full(10e6, 1e9, 10e6), 1, Client), []float64{10e6, 15e6, 10e6}},
		{"clients do not set the median", withRole(withRole(full(1e6, 1e9, 1e9), 1, Client), 2, Client), []float64{1e6, 1.5e6, 1.5e6}},
		{"clients alone measured: equal spans", withRole(full(0, 1e6, 0), 1, Client), []float64{0, 0, 0}},
		{"an aux member reduces", withRole(full(0, 8e6, 0), 1, Aux), []float64{8e6, 8e6, 8e6}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := slices.Clone(c.members)
			if got := SpanBandwidths(c.members); !slices.Equal(got, c.want) {
				t.Fatalf("SpanBandwidths(%v) = %v, want %v", c.members, got, c.want)
			}
			if !slices.Equal(before, c.members) {
				t.Fatal("SpanBandwidths changed its argument")
			}
		})
	}
}

// liarGroup is 8 full members at 200 Mbit/s (25 MB/s) announcing it, but
// for member "liar", whose link is 50 Mbit/s and who claims 10 Gbit/s.
func liarGroup(claim float64) (Group, []sim.Link) {
	const fast, slow = 25e6, 6.25e6
	var ms []Member
	var links []sim.Link
	for i := range 8 {
		m := Member{ID: fmt.Sprintf("m%d", i), Role: Full, Weight: 1, Bandwidth: fast}
		up := fast
		if i == 3 {
			m.ID, m.Bandwidth, up = "liar", claim, slow
		}
		ms = append(ms, m)
		links = append(links, sim.Link{Uplink: up, Downlink: up, Latency: 10 * time.Millisecond})
	}
	g := NewGroup("run", 1, ms)
	// NewGroup sorts by id: the links follow their members.
	ordered := make([]sim.Link, len(links))
	for i, m := range ms {
		ordered[slices.IndexFunc(g.Members, func(x Member) bool { return x.ID == m.ID })] = links[i]
	}
	return g, ordered
}

// TestLiarSpanIsBounded: a member that claims 10 Gbit/s among members at
// 200 Mbit/s gets the span a claim of 300 Mbit/s (1.5 times the median)
// gets, about two fair shares of the vector, where its claim taken at face
// value would give it the whole vector.
func TestLiarSpanIsBounded(t *testing.T) {
	const n = 1 << 20
	g, _ := liarGroup(1.25e9)
	capped, _ := liarGroup(MaxClaimRatio * 25e6)
	liar := slices.IndexFunc(g.Members, func(m Member) bool { return m.ID == "liar" })
	span := func(g Group) int {
		codec, _ := allreduce.CodecByID(allreduce.CodecNone)
		cfg, err := g.RoundConfig("liar", make([]float32, n), RoundOptions{Codec: codec, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range cfg.Spans {
			if s.Peer == liar {
				return s.Len()
			}
		}
		t.Fatal("the liar owns no span")
		return 0
	}
	got := span(g)
	if want := span(capped); got != want {
		t.Fatalf("the liar owns %d elements, the same group with its claim at the cap %d", got, want)
	}
	if share := float64(got) / n; share > 2.0/8 {
		t.Fatalf("the liar owns %.3f of the vector, want at most two fair shares (0.25)", share)
	}
	reduces, contributes := make([]bool, 8), make([]bool, 8)
	raw := make([]float64, 8)
	for i, m := range g.Members {
		reduces[i], contributes[i], raw[i] = true, true, m.Bandwidth
	}
	spans, err := allreduce.SpansForRoles(n, raw, reduces, contributes)
	if err != nil {
		t.Fatal(err)
	}
	if l := spans[liar].Len(); l < n*99/100 {
		t.Fatalf("taken at face value the claim gets %d of %d elements: this test no longer shows the cap", l, n)
	}
}

// TestLiarDoesNotStallTheRound runs the group's round over node/sim with
// the liar's real 50 Mbit/s link and a deadline of 3 s, 2.5 times what the
// round takes with equal spans: every member ends with the exact mean of
// all eight, within 1.5 times the equal-span round's time. The deadline is
// what a larger cap would break: owners report by half the deadline, and
// at twice the median the liar's span takes its link longer than that to
// receive.
func TestLiarDoesNotStallTheRound(t *testing.T) {
	const n = 1 << 20 // 4 MiB of float32: 1.2 s with equal spans
	timeout := 3 * time.Second
	liars, links := liarGroup(1.25e9)
	equal := liars
	equal.Members = slices.Clone(liars.Members)
	for i := range equal.Members {
		equal.Members[i].Bandwidth = 0
	}
	vecs := make([][]float32, len(links))
	mean := make([]float64, n)
	for i := range vecs {
		vecs[i] = make([]float32, n)
		for j := range vecs[i] {
			vecs[i][j] = float32((i*7+j)%13) - 6
			mean[j] += float64(vecs[i][j]) / float64(len(vecs))
		}
	}
	took := map[string]time.Duration{}
	for name, g := range map[string]Group{"liar": liars, "equal": equal} {
		rounds, done := runSimRound(t, g, links, vecs, timeout)
		for i, r := range rounds {
			res, err := r.Result()
			if err != nil {
				t.Fatalf("%s: member %d: %v", name, i, err)
			}
			if len(res.Contributors) != len(rounds) {
				t.Fatalf("%s: member %d averaged %v, want all %d", name, i, res.Contributors, len(rounds))
			}
			for j, x := range res.Vector {
				if math.Abs(float64(x)-mean[j]) > 1e-5 {
					t.Fatalf("%s: member %d: element %d = %v, exact mean %v", name, i, j, x, mean[j])
				}
			}
		}
		took[name] = done
	}
	t.Logf("round with the liar's claim capped: %v; with equal spans: %v; deadline %v", took["liar"], took["equal"], timeout)
	if took["liar"] > timeout || took["liar"] > took["equal"]*3/2 {
		t.Fatalf("the liar's round took %v, want at most 1.5 times the equal-span round's %v and within %v", took["liar"], took["equal"], timeout)
	}
}

// runSimRound runs g's all-reduce round over node/sim, member i with
// links[i] and vecs[i], and returns the rounds and when the last one ended.
func runSimRound(t *testing.T, g Group, links []sim.Link, vecs [][]float32, timeout time.Duration) ([]*allreduce.Round, time.Duration) {
	t.Helper()
	net := sim.New(nil)
	rounds := make([]*allreduce.Round, len(g.Members))
	doneAt := make([]time.Duration, len(g.Members))
	noteDone := func(i int, now time.Duration) {
		if doneAt[i] == 0 && rounds[i].Done() {
			doneAt[i] = now
		}
	}
	codec, err := allreduce.CodecByID(allreduce.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	send := func(from int, out []allreduce.Outgoing) {
		for _, o := range out {
			_ = net.Send(sim.ID(g.Members[from].ID), sim.ID(g.Members[o.To].ID), sim.Message{Size: o.Msg.Size(), Payload: o.Msg})
		}
	}
	var tick func(i int)
	tick = func(i int) {
		_, _ = net.After(sim.ID(g.Members[i].ID), 10*time.Millisecond, func(now time.Duration) {
			send(i, rounds[i].Tick(now))
			noteDone(i, now)
			if !rounds[i].Done() {
				tick(i)
			}
		})
	}
	for i, m := range g.Members {
		cfg, err := g.RoundConfig(m.ID, vecs[i], RoundOptions{Codec: codec, Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		if rounds[i], err = allreduce.NewRound(cfg); err != nil {
			t.Fatal(err)
		}
		h := func(now time.Duration, from sim.ID, msg sim.Message) {
			at := slices.IndexFunc(g.Members, func(x Member) bool { return x.ID == string(from) })
			out, _ := rounds[i].Receive(now, at, msg.Payload.(allreduce.Msg))
			send(i, out)
			noteDone(i, now)
		}
		if err := net.AddPeer(sim.ID(m.ID), links[i], h); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range rounds {
		send(i, r.Start(0))
		tick(i)
	}
	net.RunUntilIdle()
	return rounds, slices.Max(doneAt)
}
