package allreduce

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// commitBase makes base a committed round in which every contributor of
// vecs committed its vector with base's codec in chunks of chunk (through
// fresh error feedback if feedback): the group holds the roots, the spans
// are aligned. It returns the config, the contributions, and the adjust
// function that gives each member its own contribution in place of its
// vector.
func commitBase(t testing.TB, base RoundConfig, vecs [][]float32, chunk int, feedback bool) (RoundConfig, []*Contribution, func(int, *RoundConfig)) {
	t.Helper()
	base.Commit = CommitConfig{Run: "test/run", Epoch: 9, Chunk: chunk}
	base.Spans = AlignSpans(base.Spans, chunk, base.Len)
	base.Group.Members = slices.Clone(base.Group.Members)
	contribs := make([]*Contribution, len(vecs))
	for i, m := range base.Group.Members {
		if !m.Role.contributes() {
			continue
		}
		var fb *ErrorFeedback
		if feedback {
			fb = NewErrorFeedback(base.Codec, base.Len)
		}
		c, err := Commit(vecs[i], base.Codec, chunk, fb)
		if err != nil {
			t.Fatal(err)
		}
		contribs[i] = c
		base.Group.Members[i].Commit = c.Root(base.Commit.scope(m.ID))
	}
	adjust := func(i int, cfg *RoundConfig) {
		cfg.Vector, cfg.Contribution = nil, contribs[i]
	}
	return base, contribs, adjust
}

func faultCount(rounds []*Round) int {
	n := 0
	for _, r := range rounds {
		n += len(r.Faults())
	}
	return n
}

// TestCommittedRoundMean: random groups, lengths, weights, roles, codecs and
// chunk sizes, committed, end with every member holding the weighted mean
// of every contributor, every part checked and none refused; with codec
// none the mean is bit for bit the one the same round computes without
// commitments.
func TestCommittedRoundMean(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	codecNames := []string{"none", "none", "fp16", "bf16", "int8"}
	for trial := 0; trial < 40; trial++ {
		size := 2 + rng.Intn(12)
		g := randomRoundGroup(rng, size, fmt.Sprintf("c%d-", trial))
		codec, _ := ParseCodec(codecNames[rng.Intn(len(codecNames))])
		chunk := 256 * (1 + rng.Intn(4))
		if codec.ID() != CodecInt8 && trial%3 == 0 {
			chunk = 1 + rng.Intn(300)
		}
		n := 1 + rng.Intn(20000)
		plain := roundConfig(t, g, n, chunk*(1+rng.Intn(4)), codec)
		vecs := randomVectors(rng, g, n)
		cfg, _, adjust := commitBase(t, plain, vecs, chunk, trial%2 == 0)
		link := sim.Link{Uplink: 1e7, Downlink: 1e7, Latency: 5 * time.Millisecond}
		net := sim.New(rng)
		sg := newSimGroupLinks(t, net, cfg, vecs, sameLinks(len(g.Members), link), adjust)
		sg.start()
		net.RunUntilIdle()
		if len(sg.rejected) > 0 || faultCount(sg.rounds) > 0 {
			t.Fatalf("trial %d: rejected %v, faults %d", trial, sg.rejected, faultCount(sg.rounds))
		}
		checkAgreed(t, g, vecs, sg.rounds, allMembers(g), contributorsOf(g), codec)
		if codec.ID() != CodecNone {
			continue
		}
		plain.Spans = cfg.Spans
		net = sim.New(rng)
		ref := newSimGroup(t, net, plain, vecs, link)
		ref.start()
		net.RunUntilIdle()
		want, _ := ref.rounds[0].Result()
		got, _ := sg.rounds[0].Result()
		if !slices.Equal(got.Vector, want.Vector) {
			t.Fatalf("trial %d: the committed round's mean differs from the uncommitted one's", trial)
		}
	}
}

func sameLinks(n int, l sim.Link) []sim.Link {
	links := make([]sim.Link, n)
	for i := range links {
		links[i] = l
	}
	return links
}

// splitView is a cheat: member from sends owner victim (another member's
// span) lie(config, its contribution, another vector's, honest part)
// instead of its committed part.
type splitView struct {
	name   string
	from   int
	victim int
	lie    func(cfg RoundConfig, own, other *Contribution, m PartMsg) PartMsg
}

// flipBytes sends garbage under the honest proof.
func flipBytes(_ RoundConfig, _, _ *Contribution, m PartMsg) PartMsg {
	m.Payload = slices.Clone(m.Payload)
	for i := 0; i < len(m.Payload); i += 4 {
		m.Payload[i] ^= 0x5a
	}
	return m
}

// otherVector sends the chunks of another committed vector with their own
// valid proof: consistent, but not under this member's root.
func otherVector(cfg RoundConfig, _, other *Contribution, m PartMsg) PartMsg {
	first, count := partChunksOf(cfg, m)
	m.Payload, m.Proof, _ = other.Chunks(first, count)
	return m
}

// partChunksOf is the chunk range of part m in a committed round of cfg.
func partChunksOf(cfg RoundConfig, m PartMsg) (first, count int) {
	s := cfg.Spans[m.Span]
	lo := s.Begin + m.Part*cfg.PartSize
	hi := min(lo+cfg.PartSize, s.End)
	ch := cfg.Commit.Chunk
	return lo / ch, (hi - lo + ch - 1) / ch
}

// halfPart sends the first half of the part's chunks (at least one) with
// their own valid proof.
func halfPart(cfg RoundConfig, own, _ *Contribution, m PartMsg) PartMsg {
	first, count := partChunksOf(cfg, m)
	m.Payload, m.Proof, _ = own.Chunks(first, max(1, count/2))
	return m
}

// dropProof sends the honest bytes without their proof.
func dropProof(_ RoundConfig, _, _ *Contribution, m PartMsg) PartMsg {
	m.Proof = nil
	return m
}

// TestCommittedSplitView: a member honest toward some owners and lying to
// one (garbage under the honest proof, another vector's chunks with their
// own proof, no proof) is caught by that owner, which records a Fault
// naming it; it is excluded from the average and, when it reduces,
// declared lost so its span is re-reduced; every other member ends with
// the exact mean of the honest contributors by the deadline.
func TestCommittedSplitView(t *testing.T) {
	for _, tc := range []splitView{
		{"reducer flips bytes to one owner", 2, 0, flipBytes},
		{"reducer sends another vector to one owner", 2, 4, otherVector},
		{"reducer drops the proof to one owner", 3, 1, dropProof},
		{"reducer sends half a part to one owner", 4, 2, halfPart},
		{"client flips bytes to one owner", 6, 1, flipBytes},
		{"client sends another vector to one owner", 7, 5, otherVector},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(7))
			g := faultGroup()
			plain := roundConfig(t, g, 20000, 256, codecs[CodecNone])
			plain.PartTimeout, plain.ReduceTimeout, plain.RoundTimeout = 200*time.Millisecond, 2*time.Second, 4*time.Second
			vecs := randomVectors(rng, g, plain.Len)
			const chunk = 64 // four per part
			cfg, contribs, adjust := commitBase(t, plain, vecs, chunk, false)
			other, err := Commit(randomVectors(rng, g, plain.Len)[tc.from], cfg.Codec, chunk, nil)
			if err != nil {
				t.Fatal(err)
			}
			net := sim.New(rng)
			sg := newSimGroupLinks(t, net, cfg, vecs, sameLinks(len(g.Members), faultLink), adjust)
			lied := 0
			sg.rewrite = func(from int, o Outgoing) Outgoing {
				m, ok := o.Msg.(PartMsg)
				if from != tc.from || o.To != tc.victim || !ok || m.Phase != ReduceScatter {
					return o
				}
				lied++
				o.Msg = tc.lie(cfg, contribs[tc.from], other, m)
				return o
			}
			sg.start()
			net.RunUntilIdle()
			if lied == 0 {
				t.Fatal("the cheat sent nothing to its victim")
			}
			checkCaught(t, sg, tc.from, tc.victim)
			honest := except(allMembers(g), tc.from)
			for _, i := range honest {
				if lost := sg.rounds[i].lost[tc.from]; lost != g.Members[tc.from].Role.Reduces() {
					t.Fatalf("member %d believes the cheat (%v) lost: %v", i, g.Members[tc.from].Role, lost)
				}
			}
			checkAgreed(t, g, vecs, sg.rounds, honest, contributorsOf(g, tc.from), codecs[CodecNone])
			if d := sg.lastDone(); d > cfg.RoundTimeout {
				t.Fatalf("a round ended at %v, past the %v deadline", d, cfg.RoundTimeout)
			}
		})
	}
}

// checkCaught asserts that the victim alone recorded faults, all naming the
// cheat and wrapping ErrCommitMismatch, and that each was also returned by
// Receive as a rejection wrapping it.
func checkCaught(t *testing.T, sg *simGroup, cheat, victim int) {
	t.Helper()
	for i, r := range sg.rounds {
		fs := r.Faults()
		if i != victim {
			if i != cheat && len(fs) > 0 {
				t.Fatalf("member %d, not the victim, recorded faults %v", i, fs)
			}
			continue
		}
		if len(fs) == 0 {
			t.Fatalf("the victim (member %d) recorded no fault", victim)
		}
		for _, f := range fs {
			if f.Member != cheat || !errors.Is(f.Err, ErrCommitMismatch) {
				t.Fatalf("victim's fault %+v: want member %d and ErrCommitMismatch", f, cheat)
			}
		}
	}
	mismatches := 0
	for _, err := range sg.rejected {
		if errors.Is(err, ErrCommitMismatch) && errors.Is(err, ErrBadMessage) {
			mismatches++
		}
	}
	if want := len(sg.rounds[victim].Faults()); mismatches != want {
		t.Fatalf("%d rejections wrap ErrCommitMismatch, the victim recorded %d faults", mismatches, want)
	}
}

// TestCommittedAuxCatches: a validator that joins as aux and owns a span
// catches a member that is honest with every other owner and lies only to
// it, and the round averages the others.
func TestCommittedAuxCatches(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	g := Group{Members: []Member{
		{ID: "a", Role: RoleFull, Weight: 3}, {ID: "b", Role: RoleFull, Weight: 5},
		{ID: "c", Role: RoleFull, Weight: 2}, {ID: "v", Role: RoleAux},
		{ID: "w", Role: RoleClient, Weight: 4},
	}}
	plain := roundConfig(t, g, 30000, 1024, codecs[CodecInt8])
	plain.PartTimeout, plain.ReduceTimeout, plain.RoundTimeout = 200*time.Millisecond, 2*time.Second, 4*time.Second
	vecs := randomVectors(rng, g, plain.Len)
	cfg, _, adjust := commitBase(t, plain, vecs, 512, true)
	net := sim.New(rng)
	sg := newSimGroupLinks(t, net, cfg, vecs, sameLinks(len(g.Members), faultLink), adjust)
	const cheat, aux = 1, 3
	sg.rewrite = func(from int, o Outgoing) Outgoing {
		if m, ok := o.Msg.(PartMsg); ok && from == cheat && o.To == aux && m.Phase == ReduceScatter {
			o.Msg = flipBytes(cfg, nil, nil, m)
		}
		return o
	}
	sg.start()
	net.RunUntilIdle()
	checkCaught(t, sg, cheat, aux)
	checkAgreed(t, g, vecs, sg.rounds, except(allMembers(g), cheat), contributorsOf(g, cheat), codecs[CodecInt8])
}

// TestCommittedUncommittedMember: in a committed round, a contributor the
// group holds no root for is excluded by every owner from the start
// (ErrNoCommitment): its parts are refused unchecked, and the others
// average exactly.
func TestCommittedUncommittedMember(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	g := faultGroup()
	plain := roundConfig(t, g, 20000, 256, codecs[CodecNone])
	plain.PartTimeout, plain.ReduceTimeout, plain.RoundTimeout = 200*time.Millisecond, 2*time.Second, 4*time.Second
	vecs := randomVectors(rng, g, plain.Len)
	cfg, _, adjust := commitBase(t, plain, vecs, 256, false)
	const u = 6 // a client
	withoutRoot := slices.Clone(cfg.Group.Members)
	withoutRoot[u].Commit = Root{}
	net := sim.New(rng)
	sg := newSimGroupLinks(t, net, cfg, vecs, sameLinks(len(g.Members), faultLink), adjust, func(i int, c *RoundConfig) {
		if i != u {
			c.Group.Members = withoutRoot
		}
	})
	sg.start()
	net.RunUntilIdle()
	for i, r := range sg.rounds {
		for _, f := range r.Faults() {
			if f.Member != u || f.Part != -1 || !errors.Is(f.Err, ErrNoCommitment) {
				t.Fatalf("member %d: fault %+v", i, f)
			}
		}
		if g.Members[i].Role.Reduces() && len(r.Faults()) != 1 {
			t.Fatalf("owner %d recorded %d faults, want 1", i, len(r.Faults()))
		}
	}
	checkAgreed(t, g, vecs, sg.rounds, except(allMembers(g), u), contributorsOf(g, u), codecs[CodecNone])
	for _, err := range sg.rejected {
		if errors.Is(err, ErrCommitMismatch) {
			t.Fatalf("a part of the uncommitted member was checked: %v", err)
		}
	}
	if d := sg.lastDone(); d > cfg.RoundTimeout {
		t.Fatalf("a round ended at %v, past the %v deadline", d, cfg.RoundTimeout)
	}
}

// TestCommittedConfigRejects: NewRound refuses committed configs that could
// not be checked as documented.
func TestCommittedConfigRejects(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	g := Group{Members: []Member{{ID: "a", Role: RoleFull, Weight: 1}, {ID: "b", Role: RoleFull, Weight: 1}, {ID: "v", Role: RoleAux}}}
	plain := roundConfig(t, g, 4096, 512, codecs[CodecInt8])
	vecs := randomVectors(rng, g, plain.Len)
	cfg, contribs, _ := commitBase(t, plain, vecs, 256, false)
	cfg.Vector, cfg.Contribution = nil, contribs[0]
	if _, err := NewRound(cfg); err != nil {
		t.Fatalf("the valid config: %v", err)
	}
	bad := map[string]func(c *RoundConfig){
		"part size off the chunk":     func(c *RoundConfig) { c.PartSize = 300 },
		"int8 chunk off its blocks":   func(c *RoundConfig) { c.Commit.Chunk = 128; c.PartSize = 512 },
		"span off the chunk":          func(c *RoundConfig) { c.Spans = plain.Spans },
		"no contribution":             func(c *RoundConfig) { c.Contribution = nil },
		"another member's":            func(c *RoundConfig) { c.Contribution = contribs[1] },
		"a vector besides":            func(c *RoundConfig) { c.Vector = vecs[0] },
		"feedback besides":            func(c *RoundConfig) { c.Feedback = NewErrorFeedback(c.Codec, c.Len) },
		"another epoch":               func(c *RoundConfig) { c.Commit.Epoch++ },
		"aux with a root":             func(c *RoundConfig) { c.Group.Members[2].Commit = Root{1} },
		"contribution, not committed": func(c *RoundConfig) { c.Commit = CommitConfig{} },
		"roots, not committed": func(c *RoundConfig) {
			c.Commit, c.Contribution, c.Vector = CommitConfig{}, nil, vecs[0]
		},
	}
	for name, f := range bad {
		c := cfg
		c.Group.Members = slices.Clone(cfg.Group.Members)
		f(&c)
		if _, err := NewRound(c); err == nil {
			t.Errorf("%s: NewRound accepted it", name)
		}
	}
}
