package epoch

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/progress"
)

// TestOthersReadyAfterLoad: a peer that loads a state another peer has
// already announced it is ready to average (it caught up while the others
// trained) stops its own training early, as a peer that heard the
// announcement at that state does; otherwise it trains a whole epoch and
// misses the others' window.
func TestOthersReadyAfterLoad(t *testing.T) {
	m, err := New(Config{Run: "r", Self: "a", Role: matchmaking.Full, MinGroup: 2, MaxGroup: 4,
		MatchTimeout: time.Second, DelegateTimeout: time.Second, RoundTimeout: time.Second,
		Heartbeat: time.Second, Expiry: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m.Start(0, 0, [32]byte{1})
	next := [32]byte{2}
	key := fmt.Sprintf("r/1/%x/7", next[:8])
	ready := matchmaking.Ready{Run: key, Epoch: 1, Peer: "b", Role: matchmaking.Full, Weight: 3}
	msg := Match{Key: key, Epoch: 1, Ready: &ready, Msg: matchmaking.Msg{Ready: []matchmaking.Ready{ready}}}
	if _, err := m.ReceiveMatch(time.Second, "b", msg); err != nil {
		t.Fatal(err)
	}
	if m.OthersReady() {
		t.Fatal("ready at epoch 0 for an announcement of epoch 1")
	}
	m.phase = Loading
	acts := m.Loaded(2*time.Second, 1, next, nil)
	if m.Phase() != Training || !m.OthersReady() {
		t.Fatalf("after loading the announced state: phase %v, others ready %v (actions %v), want training with others ready",
			m.Phase(), m.OthersReady(), acts)
	}
}

// TestJoinsAnnouncedWindow: a peer that finishes its epoch just after the
// others' window stopped taking newcomers by its own rule (deadline T/2
// away) but still T/4 before it closes joins that window, which another
// peer announced for, rather than open the next one alone.
func TestJoinsAnnouncedWindow(t *testing.T) {
	const T = 4 * time.Second
	m, err := New(Config{Run: "r", Self: "a", Role: matchmaking.Full, MinGroup: 2, MaxGroup: 4,
		MatchTimeout: T, DelegateTimeout: T, RoundTimeout: T, Heartbeat: time.Second, Expiry: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := [32]byte{1}
	m.Start(0, 0, h)
	m.Tick(3 * time.Second)
	if m.Phase() != Training {
		t.Fatalf("phase %v after listening, want training", m.Phase())
	}
	key := fmt.Sprintf("r/1/%x/2", h[:8]) // closes at 8 s
	ready := matchmaking.Ready{Run: key, Epoch: 0, Peer: "b", Role: matchmaking.Full, Weight: 3}
	if _, err := m.ReceiveMatch(6*time.Second, "b", Match{Key: key, Epoch: 0, Ready: &ready,
		Msg: matchmaking.Msg{Ready: []matchmaking.Ready{ready}}}); err != nil {
		t.Fatal(err)
	}
	// At 6.5 s its own window would close at 12 s; b's closes at 8 s.
	var keys []string
	for _, a := range m.Trained(6500*time.Millisecond, 3) {
		if a.Kind == PublishMatch {
			keys = append(keys, a.Match.Key)
		}
	}
	if len(keys) == 0 || keys[0] != key {
		t.Fatalf("announced under %v, want %s, the window b announced for", keys, key)
	}
}

// TestMovesToEarlierWindow: two peers that finish within milliseconds of
// each other on either side of a grid point's T/2 mark announce for
// different windows before either hears the other. The one in the later
// window moves to the earlier one when it hears of it, while that window
// still closes T/4 or more away; otherwise each would wait out its window
// alone and drop the epoch (TestSwarmGradients failed so in CI).
func TestMovesToEarlierWindow(t *testing.T) {
	const T = 4 * time.Second
	m, err := New(Config{Run: "r", Self: "a", Role: matchmaking.Full, MinGroup: 2, MaxGroup: 4,
		MatchTimeout: T, DelegateTimeout: T, RoundTimeout: T, Heartbeat: time.Second, Expiry: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := [32]byte{1}
	start := func(m *Machine) {
		t.Helper()
		m.Start(0, 0, h)
		if _, err := m.Observe(time.Second, progress.Report{Peer: "b", Epoch: 0, StateHash: h, Offers: true, Time: 1000}); err != nil {
			t.Fatal(err)
		}
		m.Tick(3 * time.Second)
	}
	start(m)
	keys := func(acts []Action) (ks []string) {
		for _, a := range acts {
			if a.Kind == PublishMatch {
				ks = append(ks, a.Match.Key)
			}
		}
		return ks
	}
	early, late := fmt.Sprintf("r/1/%x/2", h[:8]), fmt.Sprintf("r/1/%x/3", h[:8])
	// At 6.01 s its own window closes at 12 s (8 s is less than T/2 away).
	if ks := keys(m.Trained(6010*time.Millisecond, 3)); len(ks) == 0 || ks[0] != late {
		t.Fatalf("announced under %v, want %s", ks, late)
	}
	announce := func(now time.Duration, peer, key string, role matchmaking.Role) []Action {
		t.Helper()
		ready := matchmaking.Ready{Run: key, Epoch: 0, Peer: peer, Role: role, Weight: 3}
		acts, err := m.ReceiveMatch(now, peer, Match{Key: key, Epoch: 0, Ready: &ready,
			Msg: matchmaking.Msg{Ready: []matchmaking.Ready{ready}}})
		if err != nil {
			t.Fatal(err)
		}
		return acts
	}
	// A validator's announcement moves nobody: it adds nothing to average.
	if ks := keys(announce(6020*time.Millisecond, "v", early, matchmaking.Aux)); len(ks) != 0 {
		t.Fatalf("an aux announcement for the earlier window: published %v, want nothing", ks)
	}
	// b announced at 5.99 s for the window closing at 8 s.
	if ks := keys(announce(6030*time.Millisecond, "b", early, matchmaking.Full)); len(ks) == 0 || ks[0] != early {
		t.Fatalf("after b's announcement for the earlier window: published %v, want to announce under %s", ks, early)
	}
	if m.mm.Announced() < 2 {
		t.Fatalf("the earlier window holds %d ready peers, want this one and b", m.mm.Announced())
	}
	// A window less than T/4 from closing is left alone.
	m2, _ := New(Config{Run: "r", Self: "a", Role: matchmaking.Full, MinGroup: 2, MaxGroup: 4,
		MatchTimeout: T, DelegateTimeout: T, RoundTimeout: T, Heartbeat: time.Second, Expiry: 10 * time.Second})
	start(m2)
	m2.Trained(6010*time.Millisecond, 3)
	m = m2
	if ks := keys(announce(7100*time.Millisecond, "b", early, matchmaking.Full)); len(ks) != 0 {
		t.Fatalf("an announcement for a window closing in 0.9 s: published %v, want to stay in %s", ks, late)
	}
}

// TestLoadsSuccessorWhileMatching: a peer still looking for a group of its
// epoch when two others report the same state of the next one (they
// averaged without it: it finished the epoch after their window closed)
// drops its update and loads their state at once. Waiting out its own
// window, alone, would put it one epoch behind them again, and them in a
// window that waits for it as a peer one epoch behind: each epoch cost
// both a whole window, and the restarted miner of the miner tests chased
// the others that way for many epochs.
func TestLoadsSuccessorWhileMatching(t *testing.T) {
	const T = 3 * time.Second
	m, err := New(Config{Run: "r", Self: "a", Role: matchmaking.Full, MinGroup: 2, MaxGroup: 4,
		MatchTimeout: T, DelegateTimeout: T, RoundTimeout: T, Heartbeat: time.Second, Expiry: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h, next := [32]byte{1}, [32]byte{2}
	report := func(now time.Duration, peer string, epoch uint64, hash [32]byte) []Action {
		t.Helper()
		acts, err := m.Observe(now, progress.Report{Peer: peer, Epoch: epoch, StateHash: hash, Offers: true, Time: int64(now / time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		return acts
	}
	m.Start(0, 0, h)
	report(time.Second, "b", 0, h)
	report(time.Second, "c", 0, h)
	m.Tick(3 * time.Second)
	if m.Phase() != Training {
		t.Fatalf("phase %v after listening, want training", m.Phase())
	}
	m.Trained(3100*time.Millisecond, 3)
	if m.Phase() != Matching {
		t.Fatalf("phase %v after training, want matching", m.Phase())
	}
	if acts := report(3500*time.Millisecond, "b", 1, next); len(acts) != 0 {
		t.Fatalf("one peer at the next epoch: %v, want nothing yet", acts)
	}
	acts := report(3600*time.Millisecond, "c", 1, next)
	if len(acts) != 2 || acts[0].Kind != Restore || acts[1].Kind != Load || acts[1].Epoch != 1 || acts[1].Hash != next ||
		!slices.Equal(acts[1].Donors, []string{"b", "c"}) || m.Phase() != Loading {
		t.Fatalf("two peers hold epoch 1's state: %+v (phase %v), want to drop epoch 0 and load it from b and c", acts, m.Phase())
	}
}
