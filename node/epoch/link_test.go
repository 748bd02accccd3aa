package epoch

import (
	"math"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/matchmaking"
)

// TestSetLinkAnnounces: the role and bandwidth given to SetLink are what
// the peer's next announcement carries; a bandwidth that is no rate
// announces "not measured".
func TestSetLinkAnnounces(t *testing.T) {
	for _, c := range []struct {
		role      matchmaking.Role
		bandwidth float64
		want      float64
	}{
		{matchmaking.Client, 25e6, 25e6},
		{matchmaking.Full, math.NaN(), 0},
		{matchmaking.Full, math.Inf(1), 0},
		{matchmaking.Full, -3, 0},
	} {
		m, err := New(Config{Run: "r", Self: "a", Role: matchmaking.Full, MinGroup: 2, MaxGroup: 4,
			MatchTimeout: time.Second, DelegateTimeout: time.Second, RoundTimeout: time.Second,
			Heartbeat: time.Second, Expiry: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		m.Start(0, 0, [32]byte{1})
		m.Tick(3 * time.Second)
		m.SetLink(c.role, c.bandwidth)
		var ready *matchmaking.Ready
		for _, a := range m.Trained(4*time.Second, 3) {
			if a.Kind == PublishMatch && a.Match.Ready != nil {
				ready = a.Match.Ready
			}
		}
		if ready == nil || ready.Role != c.role || ready.Bandwidth != c.want || ready.Weight != 3 {
			t.Fatalf("SetLink(%v, %v): announced %+v, want role %v, bandwidth %v", c.role, c.bandwidth, ready, c.role, c.want)
		}
	}
}
