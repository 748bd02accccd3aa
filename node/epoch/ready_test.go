package epoch

import (
	"fmt"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/matchmaking"
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
