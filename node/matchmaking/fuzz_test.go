package matchmaking

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

// FuzzReceive feeds arbitrary messages to a Matchmaker before and after its
// deadline: it must never panic, and a group it forms must contain itself
// and at most MaxGroup members in id order.
func FuzzReceive(f *testing.F) {
	f.Add([]byte("\x00\x01b\x00\x00\x00\x00\x00\x00\xf0\x3f"))
	f.Add([]byte("\x01\x00\x03abc\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Config{Run: "run", Self: "a", MinGroup: 1, MaxGroup: 4, Deadline: time.Second}
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Announce(0, Ready{Run: "run", Peer: "a", Weight: 1}); err != nil {
			t.Fatal(err)
		}
		now := time.Duration(0)
		for len(data) >= 3 {
			kind, n := data[0], int(data[1]%6)
			data = data[2:]
			var members []Member
			for range n {
				if len(data) < 10 {
					break
				}
				members = append(members, Member{
					ID:     string(rune('a' + data[0]%6)),
					Role:   Role(int8(data[1])),
					Weight: math.Float64frombits(binary.LittleEndian.Uint64(data[2:10])),
				})
				data = data[10:]
			}
			from := "b"
			if len(members) > 0 {
				from = members[0].ID
			}
			var msg Msg
			switch kind % 4 {
			case 0:
				for _, x := range members {
					msg.Ready = append(msg.Ready, Ready{Run: "run", Peer: x.ID, Role: x.Role, Weight: x.Weight})
				}
			case 1:
				msg.View = &View{Run: "run", Round: int(kind>>2) % 4, Formed: kind&0x40 != 0, Members: members}
			case 2:
				now += time.Duration(kind) * 10 * time.Millisecond
				m.Tick(now)
				continue
			}
			m.Receive(now, from, msg)
		}
		m.Tick(now + time.Minute)
		if g, err := m.Group(); err == nil {
			if !contains(g.Members, "a") || len(g.Members) > cfg.MaxGroup {
				t.Fatalf("formed %v", g.Members)
			}
			for i := 1; i < len(g.Members); i++ {
				if g.Members[i-1].ID >= g.Members[i].ID {
					t.Fatalf("members out of order: %v", g.Members)
				}
			}
		}
	})
}
