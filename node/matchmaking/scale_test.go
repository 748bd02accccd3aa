package matchmaking

import (
	"testing"
	"time"
)

// TestThousandPeers forms groups of at most 16 among 1000 peers. Gossip is
// modelled by 32 relays that batch announcements for 50 ms, so every peer
// still learns all 1000 but in about 32 messages, not 999.
func TestThousandPeers(t *testing.T) {
	start := time.Now()
	s := newSwarm(t, 5, 1000, base, lan)
	s.relays, s.flush = 32, 50*time.Millisecond
	s.announceAll(0)
	s.net.RunUntilIdle()
	gs, errs := s.groups()
	took := time.Since(start)
	if len(errs) > 0 {
		t.Fatalf("%d peers failed, e.g. %v", len(errs), errs)
	}
	byKey := checkConsistent(t, s, gs)
	sizes := sizesOf(byKey)
	if len(byKey) != 63 || sizes[0] < 15 || sizes[len(sizes)-1] > 16 {
		t.Fatalf("%d groups of sizes %v, want 63 of 15–16", len(byKey), sizes)
	}
	t.Logf("1000 peers: %d groups of %d–%d in %v wall; all done at %v virtual (deadline %v); %d messages",
		len(byKey), sizes[0], sizes[len(sizes)-1], took, s.lastDone(), base.Deadline, s.net.Stats().Sent)
}
