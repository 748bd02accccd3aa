package sim

import (
	"math/rand"
	"slices"
	"testing"
	"time"
)

// TestQueueOrder pushes and pops random events, many at one time, and
// checks that they come out in (time, scheduling) order, as a sorted list
// of the pending ones says.
func TestQueueOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	var q eventQueue
	var pending []event // the reference: every event pushed and not popped
	seq := uint64(0)
	for step := range 20_000 {
		if rng.Intn(3) > 0 || len(pending) == 0 {
			e := event{at: time.Duration(rng.Intn(1000)), seq: seq}
			seq++
			q.push(e)
			pending = append(pending, e)
			continue
		}
		got := q.pop()
		i := 0
		for j := range pending {
			if pending[j].before(&pending[i]) {
				i = j
			}
		}
		if got != pending[i] {
			t.Fatalf("step %d: popped (%v, %d), want (%v, %d)", step, got.at, got.seq, pending[i].at, pending[i].seq)
		}
		pending = slices.Delete(pending, i, i+1)
		if len(q) != len(pending) {
			t.Fatalf("step %d: %d queued, want %d", step, len(q), len(pending))
		}
	}
}
