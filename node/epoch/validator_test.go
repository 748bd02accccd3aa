package epoch

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/progress"
)

// A miner takes aux announcements only from the run's validators, and
// neither expects a validator that reports its epoch nor waits for one
// that has not reported: a validator never holds its matchmaking open.
func TestMinerRefusesUntrustedAuxAndDoesNotExpectValidators(t *testing.T) {
	m, err := New(Config{Run: "r", Self: "a", Role: matchmaking.Full, MinGroup: 2, MaxGroup: 4,
		MatchTimeout: 4 * time.Second, DelegateTimeout: 4 * time.Second, RoundTimeout: time.Second,
		Heartbeat: time.Second, Expiry: 10 * time.Second, Validators: []string{"v"}})
	if err != nil {
		t.Fatal(err)
	}
	h := [32]byte{1}
	m.Start(0, 0, h)
	for _, p := range []string{"b", "v"} {
		if _, err := m.Observe(time.Second, progress.Report{Peer: p, Epoch: 0, StateHash: h, Offers: true, Time: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	m.SetNeighbours([]string{"b", "v", "w"}) // w: a validator would be unreported, but only v is one
	m.cfg.Validators = append(m.cfg.Validators, "w")
	m.Tick(3 * time.Second)
	if m.Phase() != Training {
		t.Fatalf("phase %v after listening, want training", m.Phase())
	}
	var key string
	for _, a := range m.Trained(3*time.Second, 5) {
		if a.Kind == PublishMatch {
			key = a.Match.Key
		}
	}
	if got := m.expect; got != 2 {
		t.Fatalf("expects %d contributors, want 2 (itself and b; the validator v left out)", got)
	}
	aux := func(p string) Match {
		r := matchmaking.Ready{Run: key, Epoch: 0, Peer: p, Role: matchmaking.Aux}
		return Match{Key: key, Epoch: 0, Ready: &r, Msg: matchmaking.Msg{Ready: []matchmaking.Ready{r}}}
	}
	if _, err := m.ReceiveMatch(3100*time.Millisecond, "x", aux("x")); !errors.Is(err, matchmaking.ErrUntrustedAux) {
		t.Fatalf("aux from an untrusted peer: got %v, want ErrUntrustedAux", err)
	}
	if _, err := m.ReceiveMatch(3200*time.Millisecond, "v", aux("v")); err != nil {
		t.Fatalf("aux from the run's validator refused: %v", err)
	}
	if !m.mm.Collecting() {
		t.Fatal("matchmaking closed before b, the other expected contributor, was ready")
	}
	r := matchmaking.Ready{Run: key, Epoch: 0, Peer: "b", Role: matchmaking.Full, Weight: 4}
	if _, err := m.ReceiveMatch(3300*time.Millisecond, "b", Match{Key: key, Epoch: 0, Ready: &r,
		Msg: matchmaking.Msg{Ready: []matchmaking.Ready{r}}}); err != nil {
		t.Fatal(err)
	}
	if m.mm.Collecting() {
		t.Fatal("matchmaking still collecting with every expected contributor ready: it waits for validators")
	}
}

// An aux announcement is no sign that the epoch's contributors are ready:
// a miner still training does not stop early for a validator.
func TestAuxAnnouncementIsNotOthersReady(t *testing.T) {
	m, err := New(Config{Run: "r", Self: "a", Role: matchmaking.Full, MinGroup: 2, MaxGroup: 4,
		MatchTimeout: 4 * time.Second, DelegateTimeout: 4 * time.Second, RoundTimeout: time.Second,
		Heartbeat: time.Second, Expiry: 10 * time.Second, Validators: []string{"v"}})
	if err != nil {
		t.Fatal(err)
	}
	h := [32]byte{1}
	m.Start(0, 0, h)
	m.Tick(3 * time.Second)
	key := fmt.Sprintf("r/1/%x/2", h[:8])
	send := func(p string, role matchmaking.Role) {
		r := matchmaking.Ready{Run: key, Epoch: 0, Peer: p, Role: role}
		if role != matchmaking.Aux {
			r.Weight = 3
		}
		if _, err := m.ReceiveMatch(3500*time.Millisecond, p, Match{Key: key, Epoch: 0, Ready: &r,
			Msg: matchmaking.Msg{Ready: []matchmaking.Ready{r}}}); err != nil {
			t.Fatal(err)
		}
	}
	send("v", matchmaking.Aux)
	if m.OthersReady() {
		t.Fatal("others ready after the validator's aux announcement")
	}
	send("b", matchmaking.Full)
	if !m.OthersReady() {
		t.Fatal("others not ready after a miner's announcement")
	}
}

// Miners that finish within milliseconds of each other are complete before
// the validator that follows their epoch has heard them and announced: a
// miner keeps collecting one message delay (ConfirmTimeout) longer for it,
// so that it joins the group, and no longer for a validator that does not
// follow this epoch.
func TestMinerWaitsOneMessageDelayForAFollowingValidator(t *testing.T) {
	for _, follows := range []bool{true, false} {
		m, err := New(Config{Run: "r", Self: "a", Role: matchmaking.Full, MinGroup: 2, MaxGroup: 4,
			MatchTimeout: 4 * time.Second, DelegateTimeout: 4 * time.Second, RoundTimeout: time.Second,
			ConfirmTimeout: time.Second, Heartbeat: time.Second, Expiry: 10 * time.Second, Validators: []string{"v"}})
		if err != nil {
			t.Fatal(err)
		}
		h := [32]byte{1}
		m.Start(0, 0, h)
		vEpoch := uint64(0)
		if !follows {
			vEpoch = 7 // it follows another epoch (still loading, say)
		}
		must := func(_ []Action, err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(m.Observe(time.Second, progress.Report{Peer: "b", Epoch: 0, StateHash: h, Offers: true, Time: 1000}))
		must(m.Observe(time.Second, progress.Report{Peer: "v", Epoch: vEpoch, StateHash: h, Time: 1000}))
		m.Tick(3 * time.Second)
		var key string
		for _, a := range m.Trained(3*time.Second, 5) {
			if a.Kind == PublishMatch {
				key = a.Match.Key
			}
		}
		ready := func(p string, role matchmaking.Role, w float64) Match {
			r := matchmaking.Ready{Run: key, Epoch: 0, Peer: p, Role: role, Weight: w}
			return Match{Key: key, Epoch: 0, Ready: &r, Msg: matchmaking.Msg{Ready: []matchmaking.Ready{r}}}
		}
		must(m.ReceiveMatch(3010*time.Millisecond, "b", ready("b", matchmaking.Full, 4)))
		if !follows {
			if m.mm.Collecting() {
				t.Fatal("still collecting with the contributors complete, for a validator that follows another epoch")
			}
			continue
		}
		if !m.mm.Collecting() {
			t.Fatal("closed with the contributors complete, before the validator following the epoch could announce")
		}
		must(m.ReceiveMatch(3200*time.Millisecond, "v", ready("v", matchmaking.Aux, 0)))
		if m.mm.Collecting() {
			t.Fatal("still collecting with the contributors and the validator ready")
		}
		if got := m.mm.Announced(); got != 3 {
			t.Fatalf("announced %d, want 3: both miners and the validator", got)
		}
	}
}

// matchingWithCheat is miner "a" of a run with config cfg (its timing
// set here), collecting for epoch 0 after hearing peers b and cheat report
// it, and the announcement of a peer with a weight for its window.
func matchingWithCheat(t *testing.T, cfg Config) (*Machine, func(p string, w float64) Match) {
	t.Helper()
	cfg.Run, cfg.Self, cfg.Role, cfg.MinGroup, cfg.MaxGroup = "r", "a", matchmaking.Full, 2, 4
	cfg.MatchTimeout, cfg.DelegateTimeout, cfg.RoundTimeout = 4*time.Second, 4*time.Second, time.Second
	cfg.Heartbeat, cfg.Expiry = time.Second, 10*time.Second
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := [32]byte{1}
	m.Start(0, 0, h)
	for _, p := range []string{"b", "cheat"} {
		if _, err := m.Observe(time.Second, progress.Report{Peer: p, Epoch: 0, StateHash: h, Offers: true, Time: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	m.Tick(3 * time.Second)
	var key string
	for _, a := range m.Trained(3*time.Second, 5) {
		if a.Kind == PublishMatch {
			key = a.Match.Key
		}
	}
	return m, func(p string, w float64) Match {
		r := matchmaking.Ready{Run: key, Epoch: 0, Peer: p, Role: matchmaking.Full, Weight: w}
		return Match{Key: key, Epoch: 0, Ready: &r, Msg: matchmaking.Msg{Ready: []matchmaking.Ready{r}}}
	}
}

// A peer the validators exclude at this epoch is not expected: its
// announcement is refused, and the miner does not wait for it.
func TestExcludedPeerNotExpected(t *testing.T) {
	m, ready := matchingWithCheat(t, Config{Excluded: func(p string, e uint64) bool { return p == "cheat" && e == 0 }})
	if m.expect != 2 {
		t.Fatalf("expects %d contributors, want 2 (itself and b; the excluded peer left out)", m.expect)
	}
	if _, err := m.ReceiveMatch(3100*time.Millisecond, "cheat", ready("cheat", 4)); !errors.Is(err, matchmaking.ErrExcluded) {
		t.Fatalf("announcement of the excluded peer: %v, want ErrExcluded", err)
	}
	if _, err := m.ReceiveMatch(3200*time.Millisecond, "b", ready("b", 4)); err != nil {
		t.Fatal(err)
	}
	if m.mm.Collecting() {
		t.Fatal("still collecting with both contributors it expects ready: it waits for the excluded peer")
	}
}

// A peer that announces more samples than an epoch holds is refused, and
// no longer waited for: the miner closes its window as soon as the other
// contributors it expects are ready (issue 17).
func TestOverweightPeerNotWaitedFor(t *testing.T) {
	m, ready := matchingWithCheat(t, Config{MaxWeight: 8})
	if _, err := m.ReceiveMatch(3100*time.Millisecond, "cheat", ready("cheat", 32)); !errors.Is(err, matchmaking.ErrWeight) {
		t.Fatalf("an announcement of 32 samples of at most 8: %v, want ErrWeight", err)
	}
	if !m.mm.Collecting() {
		t.Fatal("closed before b announced")
	}
	if _, err := m.ReceiveMatch(3200*time.Millisecond, "b", ready("b", 8)); err != nil {
		t.Fatal(err)
	}
	if m.mm.Collecting() {
		t.Fatal("still collecting for the refused peer")
	}
}
