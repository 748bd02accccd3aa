package allreduce

import (
	"math"
	"math/rand"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// TestRoundErrorFeedback: a round with error feedback encodes each
// contribution through it, once. Member 0's residual is non-zero where its
// int8 parts lost precision and zero on its own span (kept local, never
// encoded); and when owner 2 crashes before the round, so every member
// resends its span-2 values to the replacement, member 0's residual is
// bit for bit the one of the round without the crash: the resend reused
// the bytes instead of compensating twice.
func TestRoundErrorFeedback(t *testing.T) {
	const n = 5000
	g := Group{}
	for i := range 4 {
		g.Members = append(g.Members, Member{ID: string(rune('a' + i)), Role: RoleFull, Weight: float64(1 + i)})
	}
	int8c := codecs[CodecInt8]
	cfg := roundConfig(t, g, n, 256, int8c)
	cfg.PartTimeout, cfg.ReduceTimeout, cfg.RoundTimeout = 200*time.Millisecond, 2*time.Second, 4*time.Second
	vecs := randomVectors(rand.New(rand.NewSource(5)), g, n)
	run := func(crash bool) (*simGroup, []*ErrorFeedback) {
		fbs := make([]*ErrorFeedback, len(g.Members))
		net := sim.New(rand.New(rand.NewSource(6)))
		links := make([]sim.Link, len(g.Members))
		for i := range links {
			links[i] = sim.Link{Uplink: 1e6, Downlink: 1e6, Latency: 2 * time.Millisecond}
		}
		sg := newSimGroupLinks(t, net, cfg, vecs, links, func(i int, c *RoundConfig) {
			fbs[i] = NewErrorFeedback(int8c, n)
			c.Feedback = fbs[i]
		})
		if crash {
			_ = net.Crash("c", 0)
		}
		sg.start()
		net.RunUntilIdle()
		return sg, fbs
	}
	sg, fbs := run(false)
	checkAgreed(t, g, vecs, sg.rounds, allMembers(g), contributorsOf(g), int8c)
	own := cfg.Spans[0]
	var outside float64
	for j, r := range fbs[0].Residual() {
		if j >= own.Begin && j < own.End {
			if r != 0 { // exact: member 0 sends nothing of its own span through the feedback
				t.Fatalf("residual[%d] = %v on member 0's own span", j, r)
			}
			continue
		}
		outside = math.Max(outside, math.Abs(float64(r)))
	}
	if outside == 0 {
		t.Fatal("residual is zero everywhere: contributions did not go through the feedback")
	}
	crashed, crashedFbs := run(true)
	if _, err := crashed.rounds[0].Result(); err != nil {
		t.Fatalf("round with owner 2 crashed: %v", err)
	}
	// Exact: both runs encode the same parts of the same vector once each.
	for j, r := range crashedFbs[0].Residual() {
		if math.Float32bits(r) != math.Float32bits(fbs[0].Residual()[j]) {
			t.Fatalf("residual[%d] = %v after a resend, %v without: a part was compensated twice", j, r, fbs[0].Residual()[j])
		}
	}
}

// TestRoundFeedbackMismatch: feedback for another codec or length is a
// config error.
func TestRoundFeedbackMismatch(t *testing.T) {
	g := Group{Members: []Member{{ID: "a", Weight: 1}, {ID: "b", Weight: 1}}}
	cfg := roundConfig(t, g, 100, 10, codecs[CodecInt8])
	cfg.Vector = make([]float32, 100)
	for _, fb := range []*ErrorFeedback{NewErrorFeedback(codecs[CodecFP16], 100), NewErrorFeedback(codecs[CodecInt8], 99)} {
		cfg.Feedback = fb
		if _, err := NewRound(cfg); err == nil {
			t.Errorf("feedback %v over %d accepted for int8 over 100", fb.Codec().ID(), len(fb.Residual()))
		}
	}
}
