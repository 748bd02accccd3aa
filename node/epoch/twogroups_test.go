package epoch

import (
	"fmt"
	"testing"
	"time"
)

// A delegate announces its group's samples in the delegates' round: more
// than one miner's epoch holds, and within the bound for a delegate. The
// other members hear it and must not take it for an over-weight claim,
// which left the delegates out of the next windows' count, so groups
// formed short and epochs forked in a real swarm of four in groups of two.
func TestDelegateIsNotOverweight(t *testing.T) {
	cfg := simConfig()
	cfg.MaxGroup, cfg.MaxWeight = 2, 5 // 5 steps, one sample each
	s := newSwarm(t, 3, cfg, 8)
	for i := range 4 {
		s.add(fmt.Sprintf("m%d", i))
	}
	s.net.RunUntil(2 * time.Minute)
	s.checkOneVersion(t)
	for _, p := range s.miners {
		if len(p.m.overweight) > 0 {
			t.Errorf("%s took %v for over-weight", p.id, p.m.overweight)
		}
	}
	if e := s.maxEpoch(); e < 15 {
		t.Errorf("epoch %d after two minutes, want 15 or more", e)
	}
	t.Log(s.summary(), s.states())
}
