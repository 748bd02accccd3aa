package progress

import (
	"bytes"
	"cmp"
	"math"
	"slices"
	"time"
)

// StateCount counts the live reports of one state: an epoch and the hash
// of the parameters it started from.
type StateCount struct {
	Epoch uint64
	Hash  [32]byte
	// Holders is how many live peers report the state, Config.Self
	// included; Offers how many of them, other than Config.Self, offer it.
	Holders, Offers int
}

// States appends to dst the live reports counted by (Epoch, StateHash),
// the zero hash included, sorted by epoch and hash, and returns it.
//
// The Tracker keeps these counts as reports arrive, so that a peer of a
// large swarm asks at every decision without a pass over every report:
// only reports that may have expired since the last call are looked at
// again. A now earlier than one the Tracker has seen counts afresh.
func (t *Tracker) States(now time.Duration, dst []StateCount) []StateCount {
	start := len(dst)
	if now < t.latest {
		var fresh stateTable
		t.Each(now, func(r Report) {
			i := fresh.intern(stateKey{r.Epoch, r.StateHash})
			fresh.count(i, t.offersToOthers(r.Peer, r.Offers), 1)
		})
		dst = fresh.appendTo(dst)
	} else {
		t.latest = now
		t.expire(now)
		dst = t.states.appendTo(dst)
	}
	slices.SortFunc(dst[start:], func(a, b StateCount) int {
		if c := cmp.Compare(a.Epoch, b.Epoch); c != 0 {
			return c
		}
		return bytes.Compare(a.Hash[:], b.Hash[:])
	})
	return dst
}

// countedOut marks, as held.seen, a report the counts have let go of: it
// had expired at a now the Tracker was asked about.
const countedOut = math.MaxInt64

// expire takes out of the counts the reports that have expired at now.
// A held report's seen is a lower bound on its time, raised only here, so
// a pass is due only once the lowest of them is Expiry old, and a report
// whose bound is younger needs no look.
func (t *Tracker) expire(now time.Duration) {
	if t.minSeen == countedOut || t.young(now, t.minSeen) {
		return
	}
	t.minSeen = countedOut
	for i := range t.peers {
		h := &t.peers[i]
		if h.seen != countedOut && !t.young(now, h.seen) {
			if !t.young(now, h.time) {
				t.states.count(h.state, t.offersToOthers(h.peer, h.offers), -1)
				h.seen = countedOut
			} else {
				h.seen = h.time
			}
		}
		t.minSeen = min(t.minSeen, h.seen)
	}
}

// young reports whether a report sent at ms is less than Expiry old at now.
func (t *Tracker) young(now time.Duration, ms int64) bool {
	return now-time.Duration(ms)*time.Millisecond < t.cfg.Expiry
}

func (t *Tracker) offersToOthers(peer string, offers bool) bool {
	return offers && peer != t.cfg.Self
}
