package allreduce

import "testing"

// TestSentBytes: what a member sends in a round without failures, counted
// by hand for 100 float32 values over equal spans of 34, 33 and 33 owned by
// members 0, 1 and 3 (member 2 is a client and owns none): a full member
// sends the 66 values outside its span and its span's mean to the two
// other contributors, a client all 100 values, an aux member only its
// span's mean to the three contributors.
func TestSentBytes(t *testing.T) {
	g := Group{Members: []Member{{ID: "a", Weight: 1}, {ID: "b", Weight: 1}, {ID: "c", Role: RoleClient, Weight: 1}, {ID: "d", Role: RoleAux}}}
	cfg := roundConfig(t, g, 100, 10, noneCodec{})
	for self, want := range []int64{4*66 + 2*4*34, 4*67 + 2*4*33, 4 * 100, 3 * 4 * 33} {
		cfg.Self = self
		if got := cfg.SentBytes(); got != want {
			t.Errorf("member %d (%v) sends %d bytes, want %d (spans %+v)", self, g.Members[self].Role, got, want, cfg.Spans)
		}
	}
}
