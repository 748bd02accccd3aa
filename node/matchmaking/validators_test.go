package matchmaking

import (
	"errors"
	"testing"
	"time"
)

// An aux announcement is taken only from a peer Config.Validators trusts,
// and aux members do not count toward Expected: a validator neither joins
// without the run's trust nor closes collection before every contributor
// is ready.
func TestValidatorsGateAuxAndDoNotCountAsExpected(t *testing.T) {
	cfg := Config{Run: "run", Self: "m1", MinGroup: 2, MaxGroup: 8, Deadline: 10 * time.Second, Expected: 2,
		Validators: func(p string) bool { return p == "v-trusted" }}
	mm, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mm.Announce(0, Ready{Run: "run", Peer: "m1", Weight: 10}); err != nil {
		t.Fatal(err)
	}
	_, err = mm.Receive(time.Millisecond, "v-rogue", Msg{Ready: []Ready{{Run: "run", Peer: "v-rogue", Role: Aux}}})
	if !errors.Is(err, ErrUntrustedAux) {
		t.Fatalf("untrusted aux: got %v, want ErrUntrustedAux", err)
	}
	if _, err := mm.Receive(2*time.Millisecond, "v-trusted", Msg{Ready: []Ready{{Run: "run", Peer: "v-trusted", Role: Aux}}}); err != nil {
		t.Fatalf("trusted aux refused: %v", err)
	}
	if !mm.Collecting() {
		t.Fatal("collection closed with one contributor and an aux of the two contributors expected")
	}
	if _, err := mm.Receive(3*time.Millisecond, "m2", Msg{Ready: []Ready{{Run: "run", Peer: "m2", Weight: 5}}}); err != nil {
		t.Fatal(err)
	}
	if mm.Collecting() {
		t.Fatal("collection still open with both expected contributors ready")
	}
	if got := mm.Announced(); got != 3 {
		t.Fatalf("announced %d, want 3 (two miners and the trusted aux; the rogue refused)", got)
	}
}

// With ExpectedAux, collection stays open after the contributors are
// complete until the expected validators have announced, for at most one
// ConfirmTimeout: a validator that announces a message delay after the
// contributors joins the group, and one that never comes holds them up by
// that much, not until the deadline.
func TestExpectedAuxWaitsOneMessageDelay(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name      string
		auxAt     time.Duration // when the validator's announcement arrives; 0: never
		wantClose time.Duration // when collection ends
		members   int
	}{
		{"validator a message delay late", 300 * ms, 300 * ms, 3},
		{"validator never comes", 0, 1005 * ms, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Run: "run", Self: "m1", MinGroup: 2, MaxGroup: 8, Deadline: 10 * time.Second, Expected: 2,
				ExpectedAux: 1, ConfirmTimeout: time.Second}
			mm, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := mm.Announce(0, Ready{Run: "run", Peer: "m1", Weight: 10}); err != nil {
				t.Fatal(err)
			}
			if _, err := mm.Receive(5*ms, "m2", Msg{Ready: []Ready{{Run: "run", Peer: "m2", Weight: 5}}}); err != nil {
				t.Fatal(err)
			}
			if !mm.Collecting() {
				t.Fatal("collection closed before the expected validator had a message delay to announce")
			}
			if next, _ := mm.NextTick(); next != 1005*ms {
				t.Fatalf("next tick %v, want 1.005s (one ConfirmTimeout after the contributors were complete)", next)
			}
			if tc.auxAt > 0 {
				if _, err := mm.Receive(tc.auxAt, "v", Msg{Ready: []Ready{{Run: "run", Peer: "v", Role: Aux}}}); err != nil {
					t.Fatal(err)
				}
			} else {
				mm.Tick(1004 * ms)
				if !mm.Collecting() {
					t.Fatal("closed before the grace ended")
				}
				mm.Tick(1005 * ms)
			}
			if mm.Collecting() {
				t.Fatalf("still collecting at %v", tc.wantClose)
			}
			// Round 0 of the confirmation: the peers agree at once when
			// fed each other's views; here only this peer's view matters.
			if got := len(mm.view); got != tc.members {
				t.Fatalf("group view %v, want %d members", mm.view, tc.members)
			}
		})
	}
	// Without ExpectedAux nothing changes: complete contributors close at once.
	mm, err := New(Config{Run: "run", Self: "m1", MinGroup: 2, MaxGroup: 8, Deadline: 10 * time.Second, Expected: 2})
	if err != nil {
		t.Fatal(err)
	}
	mm.Announce(0, Ready{Run: "run", Peer: "m1", Weight: 10})
	mm.Receive(5*ms, "m2", Msg{Ready: []Ready{{Run: "run", Peer: "m2", Weight: 5}}})
	if mm.Collecting() {
		t.Fatal("ExpectedAux 0: collection open with the contributors complete")
	}
}

// A contributor the validators exclude is refused, and does not count
// toward Expected.
func TestExcludedContributorRefused(t *testing.T) {
	cfg := Config{Run: "run", Self: "m1", MinGroup: 2, MaxGroup: 8, Deadline: 10 * time.Second, Expected: 2,
		Excluded: func(p string) bool { return p == "cheat" }}
	mm, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mm.Announce(0, Ready{Run: "run", Peer: "m1", Weight: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := mm.Receive(time.Millisecond, "cheat", Msg{Ready: []Ready{{Run: "run", Peer: "cheat", Weight: 5}}}); !errors.Is(err, ErrExcluded) {
		t.Fatalf("excluded contributor: %v, want ErrExcluded", err)
	}
	if !mm.Collecting() || mm.Announced() != 1 {
		t.Fatalf("the excluded announcement counted: collecting %v, announced %d", mm.Collecting(), mm.Announced())
	}
}

// A contributor announcing more samples than an epoch holds is refused
// (issue 17: weights are self-declared).
func TestWeightAboveBoundRefused(t *testing.T) {
	mm, err := New(Config{Run: "run", Self: "m1", MinGroup: 2, MaxGroup: 8, Deadline: 10 * time.Second, MaxWeight: 64})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mm.Announce(0, Ready{Run: "run", Peer: "m1", Weight: 64}); err != nil {
		t.Fatalf("a weight at the bound: %v", err)
	}
	if _, err := mm.Receive(time.Millisecond, "m2", Msg{Ready: []Ready{{Run: "run", Peer: "m2", Weight: 256}}}); !errors.Is(err, ErrWeight) {
		t.Fatalf("weight 256 of at most 64: %v, want ErrWeight", err)
	}
	if mm.Announced() != 1 {
		t.Fatalf("announced %d, want 1", mm.Announced())
	}
}
