package matchmaking

import (
	"regexp"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/allreduce"
)

// roundGroup has a fast and a slow full member, a client and an aux, given
// out of id order.
func roundGroup() Group {
	return NewGroup("run", 7, []Member{
		{ID: "d-aux", Role: Aux, Bandwidth: 4e6},
		{ID: "a-fast", Role: Full, Weight: 30, Bandwidth: 4e6},
		{ID: "c-client", Role: Client, Weight: 10},
		{ID: "b-slow", Role: Full, Weight: 20, Bandwidth: 1e6},
	})
}

// TestGroupRoundConfig: every member of a formed group gets a round that
// allreduce accepts, with itself at its place in the group's (id) order,
// the members' roles and weights, spans for the reducers only (the faster
// full member's larger than the slower one's), and the round's deadline
// split as allreduce.TimeoutsFor splits it: an eighth for parts, half for
// the reports.
func TestGroupRoundConfig(t *testing.T) {
	g := roundGroup()
	codec, _ := allreduce.CodecByID(allreduce.CodecNone)
	vec := make([]float32, 1000)
	for i, id := range []string{"a-fast", "b-slow", "c-client", "d-aux"} {
		v := vec
		if id == "d-aux" {
			v = nil
		}
		cfg, err := g.RoundConfig(id, v, RoundOptions{Len: 1000, Codec: codec, Timeout: 8 * time.Second})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if cfg.Self != i || cfg.Group.Members[i].ID != id {
			t.Fatalf("%s: self %d, members %+v", id, cfg.Self, cfg.Group.Members)
		}
		if _, err := allreduce.NewRound(cfg); err != nil {
			t.Fatalf("%s: allreduce refuses the round: %v", id, err)
		}
		if cfg.PartSize != allreduce.DefaultPartSize || cfg.PartTimeout != time.Second ||
			cfg.ReduceTimeout != 4*time.Second || cfg.RoundTimeout != 8*time.Second {
			t.Fatalf("%s: part %d, timeouts %v %v %v", id, cfg.PartSize, cfg.PartTimeout, cfg.ReduceTimeout, cfg.RoundTimeout)
		}
		want := []allreduce.Member{{ID: "a-fast", Role: Full, Weight: 30}, {ID: "b-slow", Role: Full, Weight: 20},
			{ID: "c-client", Role: Client, Weight: 10}, {ID: "d-aux", Role: Aux}}
		for k, m := range cfg.Group.Members {
			if m != want[k] {
				t.Fatalf("%s: member %d is %+v, want %+v", id, k, m, want[k])
			}
		}
		owners := map[int]int{}
		for _, s := range cfg.Spans {
			owners[s.Peer] = s.Len()
		}
		if _, ok := owners[2]; ok || len(owners) != 3 || owners[0] <= owners[1] {
			t.Fatalf("%s: spans %+v: want the aux and both full members to own one, the faster one more", id, cfg.Spans)
		}
	}
	if _, err := g.RoundConfig("e-stranger", vec, RoundOptions{Codec: codec, Timeout: time.Second}); err == nil {
		t.Fatal("a round for a peer outside the group")
	}
	cfg, err := g.RoundConfig("a-fast", vec, RoundOptions{Codec: codec, PartSize: 64, Timeout: time.Second})
	if err != nil || cfg.Len != len(vec) || cfg.PartSize != 64 {
		t.Fatalf("Len 0 takes len(vec), PartSize is kept: got %d, %d, %v", cfg.Len, cfg.PartSize, err)
	}
}

// TestNewGroup: a group made outside matchmaking reads like a formed one:
// members in id order, the caller's slice untouched, and a key that differs
// when anything about a member does.
func TestNewGroup(t *testing.T) {
	ms := []Member{{ID: "b", Weight: 1}, {ID: "a", Weight: 2}}
	g := NewGroup("run", 3, ms)
	if g.Members[0].ID != "a" || ms[0].ID != "b" || g.Epoch != 3 {
		t.Fatalf("group %+v from %+v", g, ms)
	}
	if g.Key != groupKey("run", 3, g.Members) {
		t.Fatalf("key %q", g.Key)
	}
	ms[1].Weight = 3
	if NewGroup("run", 3, ms).Key == g.Key {
		t.Fatal("two groups that differ in a weight share a key")
	}
}

// TestRoundName: the protocol name of a group's round is the epoch and 12
// hex digits of the key's SHA-256, the same on every version that talks to
// another (a change here splits the swarm), and differs between groups.
func TestRoundName(t *testing.T) {
	g := roundGroup()
	name := g.RoundName()
	if !regexp.MustCompile(`^allreduce-7-[0-9a-f]{12}$`).MatchString(name) {
		t.Fatalf("round name %q", name)
	}
	if got := (Group{Epoch: 7, Key: "run/7/0123456789abcdef"}).RoundName(); got != "allreduce-7-fb8a75a1ce67" {
		t.Fatalf("round name %q changed", got)
	}
	other := roundGroup()
	other.Members = other.Members[:3]
	other = NewGroup("run", 7, other.Members)
	if other.RoundName() == name {
		t.Fatal("two groups share a round name")
	}
}

// TestRoundConfigClientsOnly: a group of clients only has its clients
// reduce, with spans sized as for full members, rather than no round.
func TestRoundConfigClientsOnly(t *testing.T) {
	g := NewGroup("run", 1, []Member{{ID: "a", Role: Client, Weight: 1, Bandwidth: 1e6}, {ID: "b", Role: Client, Weight: 1, Bandwidth: 3e6}})
	codec, _ := allreduce.CodecByID(allreduce.CodecNone)
	cfg, err := g.RoundConfig("a", make([]float32, 100), RoundOptions{Codec: codec, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := allreduce.NewRound(cfg); err != nil {
		t.Fatalf("allreduce refuses the round: %v", err)
	}
	if len(cfg.Spans) != 2 || cfg.Spans[0].Len() != 40 || cfg.Spans[1].Len() != 60 {
		t.Fatalf("spans %+v: want both members to own one, sized 1:1.5 by their capped bandwidths", cfg.Spans)
	}
	for _, m := range cfg.Group.Members {
		if m.Role != Full {
			t.Fatalf("round member %+v, want full", m)
		}
	}
	if g.Members[0].Role != Client {
		t.Fatal("RoundConfig changed the group")
	}
}
