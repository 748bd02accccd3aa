package progress

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// Ids cost nothing: a flood of reports from fresh ids fills the Tracker to
// Config.MaxPeers and no further (issue 17), a known peer's report still
// counts, and once the flood's reports expire new peers are taken again.
func TestTrackerBoundsPeers(t *testing.T) {
	tr := NewTracker(Config{Self: "me", MaxPeers: 100})
	now := time.Minute
	at := int64(now / time.Millisecond)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.Observe(now, Report{Peer: "honest", Epoch: 1, Time: at}))
	refused := 0
	for i := range 10_000 {
		err := tr.Observe(now, Report{Peer: fmt.Sprintf("sybil-%d", i), Epoch: 1 << 40, Time: at})
		switch {
		case errors.Is(err, ErrFull):
			refused++
		case err != nil:
			t.Fatal(err)
		}
	}
	if got := len(tr.Live(now)); got != 100 || refused != 10_000-99 {
		t.Fatalf("%d live peers, %d refused; want 100 (the cap) and %d", got, refused, 10_000-99)
	}
	must(tr.Observe(now+time.Second, Report{Peer: "honest", Epoch: 2, Time: at + 1000})) // known: still taken
	later := now + DefaultExpiry + time.Second
	must(tr.Observe(later, Report{Peer: "newcomer", Epoch: 2, Time: int64(later / time.Millisecond)}))
	if got := len(tr.Live(later)); got != 1 {
		t.Fatalf("after the flood expired: %d live peers, want the newcomer alone", got)
	}
}
