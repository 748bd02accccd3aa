package validator

import (
	"cmp"
	"slices"
	"strings"

	"github.com/dtrain-dev/dtrain/node/verdicts"
)

// maxExcluded bounds the miners a validator tracks strikes for; past it a
// newly caught miner still gets gate 0 in the weights, but no exclusion.
const maxExcluded = 4096

// exclusions turns this validator's cheat verdicts into exclusions from
// groups (node/verdicts): a miner caught in epoch e is excluded from the
// groups of epochs e+2 to e+2+E·2^(s−1), s its strikes (at most 10) and E
// score.exclude_epochs. An exclusion in force is extended, never cut.
type exclusions struct {
	every   uint64 // E; 0: no exclusions
	strikes map[string]int
	struck  map[string]uint64 // the epoch of each miner's last strike
	entries map[string]verdicts.Entry
}

func newExclusions(every int) *exclusions {
	return &exclusions{every: uint64(max(every, 0)), strikes: map[string]int{}, struck: map[string]uint64{},
		entries: map[string]verdicts.Entry{}}
}

// caught records a cheat verdict on miner in epoch e; several verdicts on
// one miner in one epoch are one strike.
func (x *exclusions) caught(miner string, e uint64) {
	if x.every == 0 || len(miner) > verdicts.MaxPeerLen {
		return
	}
	if last, ok := x.struck[miner]; ok && last == e {
		return
	}
	if _, ok := x.strikes[miner]; !ok && len(x.strikes) >= maxExcluded {
		return
	}
	s := min(x.strikes[miner]+1, 10)
	x.strikes[miner], x.struck[miner] = s, e
	entry := verdicts.Entry{Peer: miner, From: e + 2, Until: e + 2 + x.every<<(s-1)}
	if old, ok := x.entries[miner]; ok && old.Until > entry.From {
		entry.From, entry.Until = min(old.From, entry.From), max(old.Until, entry.Until)
	}
	x.entries[miner] = entry
}

// list is the exclusions in force after epoch e, as validator's List for
// e: entries that ended are dropped; the latest-ending MaxEntries are kept.
func (x *exclusions) list(e uint64) verdicts.List {
	l := verdicts.List{Epoch: e}
	for p, en := range x.entries {
		if en.Until <= e+1 {
			delete(x.entries, p)
			continue
		}
		l.Entries = append(l.Entries, en)
	}
	slices.SortFunc(l.Entries, func(a, b verdicts.Entry) int {
		if c := cmp.Compare(b.Until, a.Until); c != 0 {
			return c // latest first
		}
		return strings.Compare(a.Peer, b.Peer)
	})
	l.Entries = l.Entries[:min(len(l.Entries), verdicts.MaxEntries)]
	return l
}
