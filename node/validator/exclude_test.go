package validator

import "testing"

// A caught miner is excluded from the groups of epochs e+2 on, for
// exclude_epochs·2^(strikes−1) epochs; several verdicts in one epoch are
// one strike; a new strike during an exclusion extends it; ended
// exclusions leave the list.
func TestExclusions(t *testing.T) {
	x := newExclusions(5)
	x.caught("m", 3)
	x.caught("m", 3) // the commitment check and the work check, say
	l := x.list(3)
	if len(l.Entries) != 1 || l.Entries[0].From != 5 || l.Entries[0].Until != 10 {
		t.Fatalf("after a first strike in epoch 3: %+v, want epochs [5, 10)", l.Entries)
	}
	x.caught("m", 12) // second strike: 10 epochs
	if l = x.list(12); len(l.Entries) != 1 || l.Entries[0].From != 14 || l.Entries[0].Until != 24 {
		t.Fatalf("after a second strike in epoch 12: %+v, want [14, 24)", l.Entries)
	}
	x.caught("m", 15) // a third while excluded: extended to 15+2+20
	if l = x.list(15); l.Entries[0].From != 14 || l.Entries[0].Until != 37 {
		t.Fatalf("a strike during an exclusion: %+v, want [14, 37)", l.Entries)
	}
	if l = x.list(36); len(l.Entries) != 0 {
		t.Fatalf("after epoch 36 the exclusion has ended: %+v", l.Entries)
	}
	off := newExclusions(0)
	off.caught("m", 1)
	if got := off.list(1); len(got.Entries) != 0 {
		t.Fatalf("exclude_epochs 0 excluded: %+v", got.Entries)
	}
}
