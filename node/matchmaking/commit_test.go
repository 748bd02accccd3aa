package matchmaking

import (
	"errors"
	"math"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/sim"
)

// TestReadyCommitWire: a Ready's root crosses the gossip envelope intact,
// an uncommitted Ready encodes as it did before roots existed, and a root
// that is not 64 hex digits is refused.
func TestReadyCommitWire(t *testing.T) {
	r := Ready{Run: "run", Epoch: 2, Peer: "p", Role: Full, Weight: 1, Commit: allreduce.Root{0: 0xfe, 31: 7}}
	b, err := Envelope{Epoch: 2, Ready: &r}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	e, err := UnmarshalEnvelope("p", b)
	if err != nil || *e.Ready != r {
		t.Fatalf("round trip: %+v, %v; want %+v", e.Ready, err, r)
	}
	r.Commit = allreduce.Root{}
	b, _ = Envelope{Epoch: 2, Ready: &r}.Marshal()
	if strings.Contains(string(b), "Commit") {
		t.Fatalf("an uncommitted Ready carries a root: %s", b)
	}
	bad := strings.Replace(string(b), `"Peer":"p"`, `"Peer":"p","Commit":"00ff"`, 1)
	if _, err := UnmarshalEnvelope("p", []byte(bad)); err == nil {
		t.Fatalf("accepted %s", bad)
	}
}

// TestReadyCommitChecked: an aux member, which contributes nothing, may not
// announce a root.
func TestReadyCommitChecked(t *testing.T) {
	m, err := New(Config{Run: "run", Self: "a", MinGroup: 1, MaxGroup: 4, Deadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Receive(0, "x", Msg{Ready: []Ready{{Run: "run", Peer: "x", Role: Aux, Commit: allreduce.Root{1}}}})
	if !errors.Is(err, ErrBadMessage) {
		t.Fatalf("aux with a root: %v, want ErrBadMessage", err)
	}
}

// TestCommittedGroupRound: peers that announce the roots of their encoded
// vectors form a group that holds every member's root, and the rounds
// their RoundConfigs build check every part against them and end with the
// exact mean.
func TestCommittedGroupRound(t *testing.T) {
	const n, chunk = 50000, 1024
	rng := rand.New(rand.NewSource(4))
	codec, _ := allreduce.CodecByID(allreduce.CodecNone)
	cfg := Config{Run: "run", MinGroup: 2, MaxGroup: 16, Deadline: time.Second}
	s := newSwarm(t, 1, 4, cfg, sim.Link{Latency: 5 * time.Millisecond})
	vecs := map[string][]float32{}
	contribs := map[string]*allreduce.Contribution{}
	for i, id := range s.ids {
		vecs[id] = make([]float32, n)
		for j := range vecs[id] {
			vecs[id][j] = float32(rng.NormFloat64())
		}
		c, err := allreduce.Commit(vecs[id], codec, chunk, nil)
		if err != nil {
			t.Fatal(err)
		}
		contribs[id] = c
		r := Ready{Run: "run", Peer: id, Role: Full, Weight: float64(1 + i), Bandwidth: float64(1+i) * 1e6,
			Commit: c.Root(allreduce.CommitScope{Run: "run", Epoch: 0, Member: id})}
		s.announce(id, 0, r)
	}
	s.net.RunUntilIdle()
	gs, errs := s.groups()
	if len(gs) != 4 {
		t.Fatalf("formed %d groups of 4, errors %v", len(gs), errs)
	}
	var rounds []*allreduce.Round
	g := gs[s.ids[0]]
	for _, mb := range g.Members {
		if mb.Commit != contribs[mb.ID].Root(allreduce.CommitScope{Run: "run", Member: mb.ID}) {
			t.Fatalf("the group holds %v for %s, not its announced root", mb.Commit, mb.ID)
		}
		rc, err := g.RoundConfig(mb.ID, nil, RoundOptions{Codec: codec, Contribution: contribs[mb.ID], Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if rc.Commit != (allreduce.CommitConfig{Run: "run", Chunk: chunk}) || rc.Contribution != contribs[mb.ID] || rc.PartSize%chunk != 0 {
			t.Fatalf("%s: a round committed as %+v with part size %d", mb.ID, rc.Commit, rc.PartSize)
		}
		for _, sp := range rc.Spans {
			if sp.Begin%chunk != 0 {
				t.Fatalf("%s: spans %+v off the chunks", mb.ID, rc.Spans)
			}
		}
		r, err := allreduce.NewRound(rc)
		if err != nil {
			t.Fatalf("%s: %v", mb.ID, err)
		}
		rounds = append(rounds, r)
	}
	res := runInstantly(t, rounds)
	var total float64
	for _, mb := range g.Members {
		total += mb.Weight
	}
	for j := 0; j < n; j += 997 {
		var want float64
		for _, mb := range g.Members {
			want += mb.Weight * float64(vecs[mb.ID][j])
		}
		want /= total
		// The round sums in float64 and rounds once to float32.
		if d := math.Abs(float64(res.Vector[j]) - want); d > 1e-6*math.Abs(want)+1e-30 {
			t.Fatalf("element %d = %v, exact mean %v", j, res.Vector[j], want)
		}
	}
}

// runInstantly delivers the rounds' messages in order with no delay until
// none is left, and returns member 0's result; every part must be taken.
func runInstantly(t *testing.T, rounds []*allreduce.Round) allreduce.Result {
	t.Helper()
	type envelope struct {
		from int
		out  allreduce.Outgoing
	}
	var queue []envelope
	for i, r := range rounds {
		for _, o := range r.Start(0) {
			queue = append(queue, envelope{i, o})
		}
	}
	for len(queue) > 0 {
		e := queue[0]
		queue = queue[1:]
		out, err := rounds[e.out.To].Receive(0, e.from, e.out.Msg)
		if err != nil {
			t.Fatalf("member %d refused a message of member %d: %v", e.out.To, e.from, err)
		}
		for _, o := range out {
			queue = append(queue, envelope{e.out.To, o})
		}
	}
	for i, r := range rounds {
		if len(r.Faults()) > 0 {
			t.Fatalf("member %d found faults %+v", i, r.Faults())
		}
	}
	res, err := rounds[0].Result()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestEquivocatedRootNeverShared: a peer that announces one root to some
// peers and another root to others is never in a formed group with a
// member that holds the other root: every formed group that contains it
// holds the root it holds itself.
func TestEquivocatedRootNeverShared(t *testing.T) {
	cfg := Config{Run: "run", MinGroup: 2, MaxGroup: 16, Deadline: time.Second, ConfirmTimeout: 500 * time.Millisecond}
	s := newSwarm(t, 1, 5, cfg, sim.Link{Latency: 5 * time.Millisecond})
	const liar = "p004"
	rootA, rootB := allreduce.Root{0xa}, allreduce.Root{0xb}
	for _, id := range s.ids[:4] {
		s.announce(id, 0, Ready{Run: "run", Peer: id, Weight: 1, Commit: allreduce.Root{1, byte(id[3])}})
	}
	s.after(liar, 0, func(now time.Duration) {
		a := Ready{Run: "run", Peer: liar, Weight: 1, Commit: rootA}
		out, err := s.mm[liar].Announce(now, a)
		must(t, err)
		for _, o := range out {
			if o.To != "" || o.Msg.Ready == nil {
				s.dispatch(liar, []Outgoing{o})
				continue
			}
			b := a
			b.Commit = rootB
			for _, to := range s.ids[:4] {
				r := a
				if to >= "p002" {
					r = b
				}
				s.send(liar, to, sim.Message{Size: 64, Payload: Msg{Ready: []Ready{r}}})
			}
		}
		s.arm(liar)
	})
	s.net.RunUntilIdle()
	gs, errs := s.groups()
	checkWhole(t, s, gs, errs)
	formedWithLiar := 0
	for id, g := range gs {
		for _, mb := range g.Members {
			if mb.ID == liar && mb.Commit != rootA {
				t.Fatalf("%s formed %v holding root %v for the liar, which holds %v", id, memberIDs(g.Members), mb.Commit, rootA)
			}
			if mb.ID == liar && id != liar && id >= "p002" {
				t.Fatalf("%s, told root B, formed a group with the liar", id)
			}
			if mb.ID == liar {
				formedWithLiar++
			}
		}
	}
	t.Logf("groups %v, errors %v, %d peers formed with the liar", len(gs), errs, formedWithLiar)
}
