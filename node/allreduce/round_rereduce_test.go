package allreduce

import (
	"errors"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// survivorsAgree asserts that every member not in dead ended with a result,
// the same vector bit for bit and the same contributors, that vector being
// the exact weighted mean of exactly those contributors, and returns them.
func survivorsAgree(t *testing.T, g Group, vecs [][]float32, sg *simGroup, dead ...int) []int {
	t.Helper()
	alive := allMembers(g)
	for _, d := range dead {
		alive = except(alive, d)
	}
	res, err := sg.rounds[alive[0]].Result()
	if err != nil {
		t.Fatalf("member %d: %v", alive[0], err)
	}
	checkAgreed(t, g, vecs, sg.rounds, alive, res.Contributors, codecs[CodecNone])
	return res.Contributors
}

// TestRoundOwnerReplaced: an owner (member 2) crashing before it sends
// anything, mid reduce-scatter, after reporting, or mid all-gather has its
// span re-reduced by the next reducer; every survivor holds the exact mean
// of the same contributors, which include member 2 only if every owner
// fully received it.
func TestRoundOwnerReplaced(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   time.Duration
	}{
		{"before sending", 0},
		{"mid reduce-scatter", 20 * time.Millisecond},
		{"mid all-gather", 2010 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, vecs, sg, _ := runFault(t, func(net *sim.Network, sg *simGroup) { _ = net.Crash("c", tc.at) })
			got := survivorsAgree(t, g, vecs, sg, 2)
			t.Logf("contributors %v, rejected %d", got, len(sg.rejected))
		})
	}
}

// TestRoundTwoOwnersLost: two owners crash, and an owner and then its
// replacement crash; the survivors still agree on an exact mean.
func TestRoundTwoOwnersLost(t *testing.T) {
	g, vecs, sg, _ := runFault(t, func(net *sim.Network, sg *simGroup) {
		_ = net.Crash("b", 10*time.Millisecond)
		_ = net.Crash("e", 40*time.Millisecond)
	})
	survivorsAgree(t, g, vecs, sg, 1, 4)

	// c's span moves to d, which dies once it has taken over, so e owns it.
	g, vecs, sg, _ = runFault(t, func(net *sim.Network, sg *simGroup) {
		_ = net.Crash("c", 0)
		_ = net.Crash("d", 2300*time.Millisecond)
	})
	survivorsAgree(t, g, vecs, sg, 2, 3)
}

// TestRoundEverythingFails: with every reducer but one dead, and the last
// one's links too slow to matter, the survivors fail cleanly by the deadline.
func TestRoundEverythingFails(t *testing.T) {
	_, _, sg, _ := runFault(t, func(net *sim.Network, sg *simGroup) {
		for _, id := range []sim.ID{"a", "b", "c", "d", "e", "f"} {
			_ = net.Crash(id, 5*time.Millisecond)
		}
	})
	for _, i := range []int{6, 7} {
		if !sg.rounds[i].Done() {
			t.Fatalf("member %d not done", i)
		}
		if _, err := sg.rounds[i].Result(); !errors.Is(err, ErrSpanLost) {
			t.Fatalf("member %d: %v, want ErrSpanLost", i, err)
		}
	}
}

// TestRoundOwnerLostAfterAgreement: an owner that dies after the agreement
// with its own contribution agreed cannot be replaced; members that got its
// whole span finish and agree, the others fail cleanly by the deadline.
func TestRoundOwnerLostAfterAgreement(t *testing.T) {
	g, vecs, sg, _ := runFault(t, func(net *sim.Network, sg *simGroup) { _ = net.Crash("c", 150*time.Millisecond) })
	var ok []int
	for i, r := range sg.rounds {
		if i == 2 {
			continue
		}
		_, err := r.Result()
		switch {
		case err == nil:
			ok = append(ok, i)
		case !errors.Is(err, ErrSpanLost):
			t.Fatalf("member %d: %v", i, err)
		}
	}
	if len(ok) > 0 {
		res, _ := sg.rounds[ok[0]].Result()
		checkAgreed(t, g, vecs, sg.rounds, ok, res.Contributors, codecs[CodecNone])
	}
	t.Logf("%d survivors finished, %d failed cleanly", len(ok), 7-len(ok))
}
