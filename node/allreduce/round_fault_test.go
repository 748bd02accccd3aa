package allreduce

import (
	"errors"
	"math"
	"math/rand"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// faultGroup is six full members and two clients (6, 7), which own nothing,
// so a client's failure must exclude it and an owner's must move its span.
func faultGroup() Group {
	g := Group{}
	for i := 0; i < 8; i++ {
		m := Member{ID: string(rune('a' + i)), Role: RoleFull, Weight: float64(1 + i)}
		if i >= 6 {
			m.Role = RoleClient
		}
		g.Members = append(g.Members, m)
	}
	return g
}

var faultLink = sim.Link{Uplink: 1e6, Downlink: 1e6, Latency: 2 * time.Millisecond}

func runFault(t *testing.T, fault func(net *sim.Network, sg *simGroup)) (Group, [][]float32, *simGroup, RoundConfig) {
	t.Helper()
	rng := rand.New(rand.NewSource(7))
	g := faultGroup()
	cfg := roundConfig(t, g, 20000, 256, codecs[CodecNone])
	cfg.PartTimeout, cfg.ReduceTimeout, cfg.RoundTimeout = 200*time.Millisecond, 2*time.Second, 4*time.Second
	vecs := randomVectors(rng, g, cfg.Len)
	net := sim.New(rng)
	sg := newSimGroup(t, net, cfg, vecs, faultLink)
	fault(net, sg)
	sg.start()
	net.RunUntilIdle()
	if d := sg.lastDone(); d > cfg.RoundTimeout+testTick {
		t.Fatalf("a round ended at %v, past the %v deadline", d, cfg.RoundTimeout)
	}
	return g, vecs, sg, cfg
}

func except(all []int, x int) []int {
	var out []int
	for _, i := range all {
		if i != x {
			out = append(out, i)
		}
	}
	return out
}

// TestRoundContributorFaults: a client that crashes before sending, one that
// crashes mid reduce-scatter, and one too slow for the deadline are
// excluded from every span by every survivor, who hold the exact mean of
// the rest.
func TestRoundContributorFaults(t *testing.T) {
	cases := []struct {
		name  string
		fault func(net *sim.Network, sg *simGroup)
	}{
		{"crash before sending", func(net *sim.Network, sg *simGroup) { _ = net.Crash("g", 0) }},
		{"crash mid reduce-scatter", func(net *sim.Network, sg *simGroup) { _ = net.Crash("g", 30*time.Millisecond) }},
		{"slow sender", func(net *sim.Network, sg *simGroup) { _ = net.SetBandwidth("g", 0, 2e3, 1e6) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, vecs, sg, _ := runFault(t, tc.fault)
			survivors := allMembers(g)
			if tc.name != "slow sender" {
				survivors = except(survivors, 6)
			}
			checkAgreed(t, g, vecs, sg.rounds, survivors, contributorsOf(g, 6), codecs[CodecNone])
		})
	}
}

// TestRoundBadMessages: malformed parts, NaN, out-of-range parts, forged
// spans and messages from non-members are rejected and the result is exact.
func TestRoundBadMessages(t *testing.T) {
	nan := codecs[CodecNone].Encode(nil, []float32{float32(math.NaN())})
	bad := []struct {
		from sim.ID
		msg  Msg
	}{
		{"g", PartMsg{Phase: ReduceScatter, Span: 0, Part: 0, Weight: 7, Payload: []byte{1, 2, 3}}},
		{"g", PartMsg{Phase: ReduceScatter, Span: 0, Part: 1, Weight: 7, Payload: append(nan, make([]byte, 4*255)...)}},
		{"g", PartMsg{Phase: ReduceScatter, Span: 0, Part: 99, Weight: 7, Payload: make([]byte, 4*256)}},
		{"g", PartMsg{Phase: ReduceScatter, Span: 0, Part: 2, Weight: 1e9, Payload: make([]byte, 4*256)}},
		{"g", PartMsg{Phase: AllGather, Span: 1, Part: 0, Payload: make([]byte, 4*256)}},
		{"g", ReportMsg{Span: 0, Have: []int{6}}},
		{"b", ReportMsg{Span: 1, Have: []int{3, 2}}},
		{"mallory", PartMsg{Phase: ReduceScatter, Span: 0, Part: 3, Weight: 1, Payload: make([]byte, 4*256)}},
	}
	g, vecs, sg, _ := runFault(t, func(net *sim.Network, sg *simGroup) {
		_ = net.AddPeer("mallory", faultLink, nil)
		_, _ = net.After("mallory", time.Millisecond, func(time.Duration) {
			for _, b := range bad {
				to := "a"
				if b.from == "a" {
					to = "b"
				}
				_ = net.Send(b.from, sim.ID(to), sim.Message{Size: b.msg.Size(), Payload: b.msg})
			}
		})
	})
	if len(sg.rejected) != len(bad) {
		t.Fatalf("rejected %d messages, want %d: %v", len(sg.rejected), len(bad), sg.rejected)
	}
	for _, err := range sg.rejected {
		if !errors.Is(err, ErrBadMessage) {
			t.Fatalf("rejection %v does not wrap ErrBadMessage", err)
		}
	}
	checkAgreed(t, g, vecs, sg.rounds, allMembers(g), contributorsOf(g), codecs[CodecNone])
}
