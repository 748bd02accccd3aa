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
