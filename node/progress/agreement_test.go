package progress

import (
	"slices"
	"testing"
	"time"
)

func TestHashAgreement(t *testing.T) {
	h1, h2, h3 := [32]byte{1}, [32]byte{2}, [32]byte{3}
	type peer struct {
		id     string
		epoch  uint64
		hash   [32]byte
		offers bool
	}
	cases := []struct {
		name       string
		self       string
		peers      []peer
		majority   [32]byte
		dissenters []string
		donors     []string
	}{
		{"three against one", "a", []peer{
			{"a", 5, h2, true}, {"b", 5, h2, true}, {"c", 5, h2, false}, {"d", 5, h1, true},
			{"e", 5, [32]byte{}, true}, // unknown: neither side
			{"f", 6, h1, true},         // another epoch
		}, h2, []string{"d"}, []string{"b"}},
		{"tie: lowest hash", "", []peer{
			{"a", 5, h3, true}, {"b", 5, h3, true}, {"c", 5, h2, true}, {"d", 5, h2, true},
		}, h2, []string{"a", "b"}, []string{"c", "d"}},
		{"no hash known", "", []peer{{"a", 5, [32]byte{}, true}}, [32]byte{}, nil, nil},
		{"nobody at the epoch", "", []peer{{"a", 4, h1, true}}, [32]byte{}, nil, nil},
	}
	const now = time.Minute
	for _, c := range cases {
		tr := NewTracker(Config{Self: c.self})
		for _, p := range c.peers {
			mustObserve(t, tr, now, Report{Peer: p.id, Epoch: p.epoch, StateHash: p.hash,
				Offers: p.offers, Time: now.Milliseconds()})
		}
		maj, dis := tr.HashAgreement(now, 5)
		if maj != c.majority || !slices.Equal(dis, c.dissenters) {
			t.Errorf("%s: HashAgreement = %x, %q; want %x, %q", c.name, maj[:1], dis, c.majority[:1], c.dissenters)
		}
		if got := tr.Donors(now, 5); !slices.Equal(got, c.donors) {
			t.Errorf("%s: Donors = %q, want %q", c.name, got, c.donors)
		}
	}
}
