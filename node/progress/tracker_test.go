package progress

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// rep builds a report of peer at epoch, sent at the given time.
func rep(peer string, epoch, samples uint64, sent time.Duration) Report {
	return Report{Peer: peer, Epoch: epoch, Samples: samples, Time: sent.Milliseconds()}
}

func mustObserve(t *testing.T, tr *Tracker, now time.Duration, rs ...Report) {
	t.Helper()
	for _, r := range rs {
		if err := tr.Observe(now, r); err != nil {
			t.Fatalf("Observe(%v, %+v): %v", now, r, err)
		}
	}
}

func TestObserveKeepsLatest(t *testing.T) {
	const now = 100 * time.Second
	tr := NewTracker(Config{})
	steps := []struct {
		r    Report
		want Report // held afterwards
	}{
		{rep("a", 1, 100, now), rep("a", 1, 100, now)},
		{rep("a", 1, 50, now), rep("a", 1, 100, now)},                          // fewer samples: an echo
		{rep("a", 1, 100, now+time.Second), rep("a", 1, 100, now+time.Second)}, // idle heartbeat refreshes
		{rep("a", 2, 0, now), rep("a", 2, 0, now)},                             // next epoch resets samples
		{rep("a", 1, 500, now+2*time.Second), rep("a", 2, 0, now)},             // late report of the old epoch
		{rep("a", 9, 3, now), rep("a", 9, 3, now)},                             // ahead of the swarm: kept
	}
	for i, s := range steps {
		mustObserve(t, tr, now, s.r)
		if got := tr.Live(now); len(got) != 1 || got[0] != s.want {
			t.Fatalf("step %d: held %+v, want %+v", i, got, s.want)
		}
	}
}

func TestObserveRejects(t *testing.T) {
	const now = 100 * time.Second
	tr := NewTracker(Config{Expiry: 10 * time.Second})
	cases := []struct {
		name string
		r    Report
		want error
	}{
		{"no peer id", rep("", 1, 1, now), ErrBadReport},
		{"negative rate", Report{Peer: "a", SamplesPerSec: -1, Time: now.Milliseconds()}, ErrBadReport},
		{"expired", rep("a", 1, 1, now-10*time.Second), ErrStale},
		{"far future", rep("a", 1, 1, now+10*time.Second), ErrFuture},
	}
	for _, c := range cases {
		if err := tr.Observe(now, c.r); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
	if got := tr.Live(now); len(got) != 0 {
		t.Fatalf("rejected reports are held: %+v", got)
	}
}

func TestExpiry(t *testing.T) {
	const s = time.Second
	tr := NewTracker(Config{Expiry: 10 * s})
	mustObserve(t, tr, 0, rep("a", 3, 0, 0))
	mustObserve(t, tr, 5*s, rep("b", 3, 0, 5*s))
	mustObserve(t, tr, 5*s, rep("c", 3, 0, 14*s)) // clock 9 s ahead: live until 24 s
	for _, c := range []struct {
		now  time.Duration
		want []string
	}{
		{0, []string{"a", "b"}}, // c is dated Expiry or more ahead of 0
		{10*s - time.Millisecond, []string{"a", "b", "c"}},
		{10 * s, []string{"b", "c"}},
		{15 * s, []string{"c"}},
		{24 * s, nil},
	} {
		if got := tr.Peers(c.now, 3); !slices.Equal(got, c.want) {
			t.Errorf("Peers(%v) = %q, want %q", c.now, got, c.want)
		}
	}
	if got := tr.SwarmEpoch(30 * s); got != 0 {
		t.Errorf("SwarmEpoch with nobody live = %d, want 0", got)
	}
	// A new peer sweeps the expired ones out of memory.
	mustObserve(t, tr, 30*s, rep("d", 4, 0, 30*s))
	if len(tr.peers) != 1 {
		t.Errorf("after the sweep the tracker holds %d peers, want 1", len(tr.peers))
	}
}

func TestSwarmEpoch(t *testing.T) {
	cases := []struct {
		name   string
		epochs []uint64
		want   uint64
	}{
		{"nobody", nil, 0},
		{"alone", []uint64{7}, 7},
		{"one liar of two", []uint64{3, 1e9}, 3},
		{"one liar of six", []uint64{3, 3, 3, 3, 3, 1e9}, 3},
		{"two liars of five", []uint64{3, 3, 3, 1e9, 1e9}, 3},
		{"majority moved on", []uint64{3, 4, 4}, 4},
		{"split in half: the lower", []uint64{3, 3, 4, 4}, 3},
		{"spread: the median", []uint64{1, 2, 3, 4, 5}, 3},
		{"majority ahead of self", []uint64{0, 5, 5}, 5},
		// The documented limits: a majority decides, honest or not.
		{"three liars of five", []uint64{3, 3, 9, 9, 9}, 9},
		{"joiners outnumber the swarm", []uint64{0, 0, 0, 5, 5}, 0},
	}
	const now = time.Hour
	for _, c := range cases {
		tr := NewTracker(Config{})
		for i, e := range c.epochs {
			mustObserve(t, tr, now, rep(string(rune('a'+i)), e, 0, now))
		}
		if got := tr.SwarmEpoch(now); got != c.want {
			t.Errorf("%s %v: SwarmEpoch = %d, want %d", c.name, c.epochs, got, c.want)
		}
	}
}

func TestLiarDoesNotMakeHonestPeersLoad(t *testing.T) {
	const now = time.Hour
	tr := NewTracker(Config{Self: "h0"})
	for _, p := range []string{"h0", "h1", "h2", "h3", "h4"} {
		mustObserve(t, tr, now, rep(p, 12, 100, now))
	}
	mustObserve(t, tr, now, Report{Peer: "liar", Epoch: 1e9, Samples: 1e18, Offers: true,
		StateHash: [32]byte{9}, Time: now.Milliseconds()})
	if got := tr.SwarmEpoch(now); got != 12 {
		t.Fatalf("SwarmEpoch = %d, want 12", got)
	}
	if tr.Behind(now, 12) {
		t.Error("an honest peer at the swarm's epoch is told to load state")
	}
	if !tr.Behind(now, 11) {
		t.Error("a peer one epoch behind the honest majority is not Behind")
	}
}
