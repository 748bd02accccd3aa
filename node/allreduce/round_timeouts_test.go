package allreduce

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRoundTimeouts: TimeoutsFor's split of any round is accepted and
// leaves a quarter of the round after a lost owner's replacement is due to
// report; a split that would declare an owner lost too late to replace it
// (the miner's former part = round/4, reduce = 3/4 round) is rejected with
// a reason.
func TestRoundTimeouts(t *testing.T) {
	g := Group{Members: []Member{{ID: "a", Weight: 1}, {ID: "b", Weight: 2}}}
	for _, round := range []time.Duration{time.Millisecond, time.Second, 60 * time.Second, time.Hour} {
		cfg := roundConfig(t, g, 10, 4, noneCodec{})
		cfg.Vector = make([]float32, 10)
		cfg.PartTimeout, cfg.ReduceTimeout, cfg.RoundTimeout = TimeoutsFor(round)
		if _, err := NewRound(cfg); err != nil {
			t.Fatalf("TimeoutsFor(%v): %v", round, err)
		}
		if left := round - cfg.reduceBy() - 2*cfg.Slack(); left < round/4 {
			t.Fatalf("TimeoutsFor(%v) leaves %v after a replacement's report is due", round, left)
		}
		cfg.PartTimeout, cfg.ReduceTimeout = round/4, round*3/4
		_, err := NewRound(cfg)
		if err == nil || !strings.Contains(fmt.Sprint(err), "no time to replace a lost owner") {
			t.Fatalf("part %v, reduce %v, round %v: %v, want rejected", cfg.PartTimeout, cfg.ReduceTimeout, round, err)
		}
	}
}
