package verdicts

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestListRoundTrip(t *testing.T) {
	l := List{Epoch: 7, Entries: []Entry{{Peer: "12D3KooWa", From: 9, Until: 14}, {Peer: "12D3KooWb", From: 9, Until: 10}}}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Epoch != 7 || len(got.Entries) != 2 || got.Entries[0] != l.Entries[0] || got.Entries[1] != l.Entries[1] {
		t.Fatalf("round trip: %+v", got)
	}
	if b, err := (List{Epoch: 1}).Marshal(); err != nil || len(b) != 11 {
		t.Fatalf("empty list: %d bytes, %v", len(b), err)
	}
}

func TestListRefusesBadInput(t *testing.T) {
	good, _ := List{Epoch: 1, Entries: []Entry{{Peer: "p", From: 3, Until: 5}}}.Marshal()
	bad := map[string][]byte{
		"empty":         nil,
		"short":         good[:10],
		"version":       append([]byte{2}, good[1:]...),
		"truncated":     good[:len(good)-1],
		"trailing":      append(bytes.Clone(good), 0),
		"too many":      append(append(bytes.Clone(good[:9]), 0xff, 0xff), good[11:]...),
		"empty range":   mustRaw(t, 5, 5, "p"),
		"backward":      mustRaw(t, 6, 5, "p"),
		"no peer":       mustRaw(t, 1, 5, ""),
		"count too big": append(append(bytes.Clone(good[:9]), 2, 0), good[11:]...),
	}
	for name, b := range bad {
		if _, err := Unmarshal(b); !errors.Is(err, ErrBadList) {
			t.Errorf("%s: %v, want ErrBadList", name, err)
		}
	}
	if _, err := (List{Entries: []Entry{{Peer: strings.Repeat("p", MaxPeerLen+1), From: 1, Until: 2}}}).Marshal(); err == nil {
		t.Error("an oversized peer id marshaled")
	}
}

// mustRaw encodes one entry without Marshal's checks.
func mustRaw(t *testing.T, from, until byte, peer string) []byte {
	t.Helper()
	b := []byte{Version, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	b = append(b, from, 0, 0, 0, 0, 0, 0, 0, until, 0, 0, 0, 0, 0, 0, 0, byte(len(peer)))
	return append(b, peer...)
}

func FuzzUnmarshal(f *testing.F) {
	good, _ := List{Epoch: 1, Entries: []Entry{{Peer: "p", From: 3, Until: 5}}}.Marshal()
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Unmarshal(b)
		if err != nil {
			return
		}
		again, err := l.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted encoding does not re-encode to itself: %v", err)
		}
	})
}

// A Set takes only trusted validators' lists, the newest of each, and
// excludes a peer over its entry's epochs only.
func TestSet(t *testing.T) {
	s := NewSet(func(v string) bool { return v == "v1" || v == "v2" })
	if err := s.Update("stranger", List{Epoch: 1, Entries: []Entry{{Peer: "honest", From: 0, Until: 100}}}); err == nil {
		t.Fatal("a list from a peer that is no validator was taken")
	}
	if s.Excluded("honest", 5) {
		t.Fatal("a stranger's list excludes")
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Update("v1", List{Epoch: 4, Entries: []Entry{{Peer: "cheat", From: 6, Until: 11}}}))
	for e, want := range map[uint64]bool{5: false, 6: true, 10: true, 11: false} {
		if got := s.Excluded("cheat", e); got != want {
			t.Errorf("epoch %d: excluded %v, want %v", e, got, want)
		}
	}
	must(s.Update("v1", List{Epoch: 3})) // older: ignored
	if !s.Excluded("cheat", 7) {
		t.Error("an older list replaced a newer one")
	}
	must(s.Update("v1", List{Epoch: 8})) // newer and empty: lifted
	if s.Excluded("cheat", 9) {
		t.Error("a newer list without the entry did not lift it")
	}
}
