package progress

import (
	"bytes"
	"time"
)

// HashAgreement returns the state hash held by most of the live peers at
// epoch that report one (a non-zero StateHash), and the sorted ids of the
// peers reporting a different one. A tie goes to the lowest hash, so every
// peer picks the same. With no hash reported, majority is zero and
// dissenters nil. In gradients mode every peer starts an epoch from the
// same parameters, so a dissenter has diverged and should load state.
func (t *Tracker) HashAgreement(now time.Duration, epoch uint64) (majority [32]byte, dissenters []string) {
	rs := t.at(now, epoch)
	count := make(map[[32]byte]int)
	for _, r := range rs {
		if r.StateHash != ([32]byte{}) {
			count[r.StateHash]++
		}
	}
	best := 0
	for h, n := range count {
		if n > best || (n == best && bytes.Compare(h[:], majority[:]) < 0) {
			majority, best = h, n
		}
	}
	for _, r := range rs { // sorted by peer id
		if r.StateHash != ([32]byte{}) && r.StateHash != majority {
			dissenters = append(dissenters, r.Peer)
		}
	}
	return majority, dissenters
}

// Donors returns the sorted ids of the live peers at epoch, other than
// Config.Self, that offer their state and report the majority state hash:
// the peers a joiner downloads from, and verifies against that hash. None
// when no peer at epoch reports a hash.
func (t *Tracker) Donors(now time.Duration, epoch uint64) []string {
	majority, _ := t.HashAgreement(now, epoch)
	if majority == ([32]byte{}) {
		return nil
	}
	var ids []string
	for _, r := range t.at(now, epoch) {
		if r.Offers && r.StateHash == majority && r.Peer != t.cfg.Self {
			ids = append(ids, r.Peer)
		}
	}
	return ids
}
