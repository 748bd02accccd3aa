package miner

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
)

func norm(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

// update is a fake honest update of n values.
func update(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * 1e-3)
	}
	return v
}

func newTestCheater(t *testing.T, c Cheat) *cheater {
	t.Helper()
	ch, err := newCheater(c, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// TestCheatContribution: each cheat changes what the miner contributes
// from its From epoch on, as its description says, and nothing before.
func TestCheatContribution(t *testing.T) {
	ctx := context.Background()
	const n = 1000
	honest0, honest1 := update(1, n), update(2, n)
	for _, kind := range CheatKinds {
		t.Run(kind, func(t *testing.T) {
			c := newTestCheater(t, Cheat{Kind: kind, From: 1, Dir: t.TempDir(), Seed: 7})
			got0, claimed0 := c.contribution(ctx, 0, honest0, 8)
			if !slices.Equal(got0, honest0) || claimed0 != 8 {
				t.Fatalf("epoch 0, before the cheat starts: contribution changed (claimed %v)", claimed0)
			}
			if kind == "copy" {
				src := newTestCheater(t, Cheat{Kind: CheatCopySource, From: 1, Dir: c.Dir})
				if got, _ := src.contribution(ctx, 1, honest0, 8); !slices.Equal(got, honest0) {
					t.Fatal("the copy source changed its own update")
				}
			}
			mean := update(3, n)
			c.applied(mean)
			got, claimed := c.contribution(ctx, 1, honest1, 8)
			wantClaim := 8.0
			switch kind {
			case "random":
				if d := math.Abs(norm(got)/norm(honest1) - 1); d > 1e-5 || slices.Equal(got, honest1) {
					t.Errorf("norm ratio off by %v, or the honest update", d)
				}
			case "zero":
				if norm(got) != 0 {
					t.Errorf("norm %v, want 0", norm(got))
				}
			case "scale5":
				for i := range got {
					if got[i] != 5*honest1[i] {
						t.Fatalf("value %d: %v, want 5×%v", i, got[i], honest1[i])
					}
				}
			case "signflip":
				for i := range got {
					if got[i] != -10*honest1[i] {
						t.Fatalf("value %d: %v, want −10×%v", i, got[i], honest1[i])
					}
				}
			case "copy":
				if !slices.Equal(got, honest0) {
					t.Error("not the source's update")
				}
			case "stale":
				if !slices.Equal(got, honest0) {
					t.Error("not the epoch before's honest update")
				}
			case "echo":
				if !slices.Equal(got, mean) {
					t.Error("not the last applied average")
				}
			case "inflate":
				wantClaim = 8 * inflation
				if !slices.Equal(got, honest1) {
					t.Error("update changed")
				}
			case "otherdata":
				if !slices.Equal(got, honest1) {
					t.Error("update changed: otherdata changes the lane, not the update")
				}
				if c.lanePeer(0, "me") != "me" || c.lanePeer(1, "me") == "me" {
					t.Errorf("lanes: epoch 0 %q, epoch 1 %q; want its own, then another", c.lanePeer(0, "me"), c.lanePeer(1, "me"))
				}
			case "splitview":
				if slices.Equal(got, honest1) || math.Abs(norm(got)/norm(honest1)-1) > 1e-5 {
					t.Errorf("before any round: want random values of the honest norm")
				}
			}
			if claimed != wantClaim {
				t.Errorf("claimed %v samples, want %v", claimed, wantClaim)
			}
		})
	}
	var nilCheater *cheater
	if got, claimed := nilCheater.contribution(ctx, 5, honest1, 8); !slices.Equal(got, honest1) || claimed != 8 ||
		nilCheater.lanePeer(5, "me") != "me" {
		t.Error("an honest miner's contribution changed")
	}
}

// TestCheatSplitView: after a round in which a validator owned a span,
// the split-view cheater keeps its honest values exactly there and sends
// random values of the honest norm elsewhere. (Links unmeasured, so the
// spans are equal: with two contributors of one measured bandwidth the
// load-balancing optimum gives the aux member none.)
func TestCheatSplitView(t *testing.T) {
	const n = 64 * allreduce.DefaultCommitChunk
	g := matchmaking.NewGroup("run", 0, []matchmaking.Member{
		{ID: "a-miner", Role: matchmaking.Full, Weight: 1},
		{ID: "b-validator", Role: matchmaking.Aux},
		{ID: "c-miner", Role: matchmaking.Full, Weight: 1},
	})
	c := newTestCheater(t, Cheat{Kind: "splitview", From: 1})
	c.sawRound(g, "c-miner", n, []string{"b-validator"})
	lo, hi := c.span[0], c.span[1]
	if !(0 < lo && lo < hi && hi < n) {
		t.Fatalf("validator's span [%d, %d) of %d: want one in the middle (members sorted by id)", lo, hi, n)
	}
	honest := update(4, n)
	got, _ := c.contribution(context.Background(), 1, honest, 8)
	if !slices.Equal(got[lo:hi], honest[lo:hi]) {
		t.Error("the validator's span is not the honest values")
	}
	for _, r := range [][2]int{{0, lo}, {hi, n}} {
		a, b := got[r[0]:r[1]], honest[r[0]:r[1]]
		if slices.Equal(a, b) || math.Abs(norm(a)/norm(b)-1) > 1e-5 {
			t.Errorf("[%d, %d): want random values of the honest norm", r[0], r[1])
		}
	}
}

func TestCheatCheck(t *testing.T) {
	err := Cheat{Kind: "lazy"}.Check()
	if err == nil || !strings.Contains(err.Error(), strings.Join(CheatKinds, ", ")) {
		t.Errorf("unknown kind: %v, want an error listing the kinds", err)
	}
	if err := (Cheat{Kind: "copy"}).Check(); err == nil {
		t.Error("copy without a directory accepted")
	}
	for _, k := range append(CheatKinds, "") {
		if err := (Cheat{Kind: k, Dir: "d"}).Check(); err != nil {
			t.Errorf("%q: %v", k, err)
		}
	}
}
