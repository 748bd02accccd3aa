// Package verdicts carries validators' exclusions to the miners: a run's
// trusted validator that catches a miner cheating gossips, signed as every
// gossip message is, that the miner is excluded from all-reduce groups for
// a range of epochs; miners refuse its announcements there and stop
// expecting it. The range starts two epochs after the one the verdict is
// about, so that the list has a whole epoch to reach every miner before
// any matchmaking it changes: miners that disagree on a member would form
// different groups. It ends after a probation that doubles with every
// strike; then the miner averages, and is audited, again.
package verdicts

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// GossipType is the gossip message type of a validator's List.
const GossipType = "verdicts"

// Wire bounds.
const (
	// Version is the first byte of every encoded List.
	Version = 1
	// MaxEntries bounds a List's entries.
	MaxEntries = 1024
	// MaxPeerLen bounds a peer id; libp2p ids are under 64 bytes.
	MaxPeerLen = 128
)

// ErrBadList marks an encoding that does not decode or makes no sense.
var ErrBadList = errors.New("verdicts: bad list")

// Entry excludes Peer from the groups of epochs From to Until-1.
type Entry struct {
	Peer        string
	From, Until uint64
}

// List is one validator's exclusions as of Epoch, the last epoch it
// scored.
type List struct {
	Epoch   uint64
	Entries []Entry
}

// Marshal encodes l:
//
//	version u8 | epoch u64 | count u16 | count × (from u64 | until u64 | peerLen u8 | peer)
//
// integers little-endian. It fails on a list Unmarshal would refuse.
func (l List) Marshal() ([]byte, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 11+len(l.Entries)*(17+64))
	b = append(b, Version)
	b = binary.LittleEndian.AppendUint64(b, l.Epoch)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(l.Entries)))
	for _, e := range l.Entries {
		b = binary.LittleEndian.AppendUint64(b, e.From)
		b = binary.LittleEndian.AppendUint64(b, e.Until)
		b = append(b, byte(len(e.Peer)))
		b = append(b, e.Peer...)
	}
	return b, nil
}

func (l List) validate() error {
	if len(l.Entries) > MaxEntries {
		return fmt.Errorf("%d entries, at most %d: %w", len(l.Entries), MaxEntries, ErrBadList)
	}
	for _, e := range l.Entries {
		if e.Peer == "" || len(e.Peer) > MaxPeerLen || e.Until <= e.From {
			return fmt.Errorf("entry %q for epochs [%d, %d): %w", e.Peer, e.From, e.Until, ErrBadList)
		}
	}
	return nil
}

// Unmarshal decodes a List strictly: exact length, every entry valid.
func Unmarshal(b []byte) (List, error) {
	if len(b) < 11 {
		return List{}, fmt.Errorf("%d bytes: %w", len(b), ErrBadList)
	}
	if b[0] != Version {
		return List{}, fmt.Errorf("version %d, want %d: %w", b[0], Version, ErrBadList)
	}
	le := binary.LittleEndian
	l := List{Epoch: le.Uint64(b[1:])}
	n := int(le.Uint16(b[9:]))
	if n > MaxEntries {
		return List{}, fmt.Errorf("%d entries, at most %d: %w", n, MaxEntries, ErrBadList)
	}
	p := b[11:]
	l.Entries = make([]Entry, 0, n)
	for range n {
		if len(p) < 17 || len(p) < 17+int(p[16]) {
			return List{}, fmt.Errorf("truncated entry: %w", ErrBadList)
		}
		e := Entry{From: le.Uint64(p), Until: le.Uint64(p[8:]), Peer: string(p[17 : 17+int(p[16])])}
		l.Entries = append(l.Entries, e)
		p = p[17+int(p[16]):]
	}
	if len(p) != 0 {
		return List{}, fmt.Errorf("%d bytes after the entries: %w", len(p), ErrBadList)
	}
	if err := l.validate(); err != nil {
		return List{}, err
	}
	return l, nil
}

// Set is what a miner holds of its run's validators' lists: each trusted
// validator's latest, and whether one of them excludes a peer at an
// epoch. Only lists from trusted validators are kept, at most one each,
// so its size is bounded by the run's validators. Not safe for concurrent
// use.
type Set struct {
	trusted func(string) bool
	lists   map[string]List
}

// NewSet returns a Set that takes lists only from validators trusted
// accepts.
func NewSet(trusted func(validator string) bool) *Set {
	return &Set{trusted: trusted, lists: map[string]List{}}
}

// Update takes validator from's list, unless from is not trusted or the
// list is older than the one held.
func (s *Set) Update(from string, l List) error {
	if !s.trusted(from) {
		return fmt.Errorf("verdicts from %s, not one of the run's validators", from)
	}
	if old, ok := s.lists[from]; ok && old.Epoch > l.Epoch {
		return nil
	}
	s.lists[from] = l
	return nil
}

// Excluded reports whether a trusted validator excludes peer from the
// groups of epoch.
func (s *Set) Excluded(peer string, epoch uint64) bool {
	for _, l := range s.lists {
		for _, e := range l.Entries {
			if e.Peer == peer && e.From <= epoch && epoch < e.Until {
				return true
			}
		}
	}
	return false
}
