// Package roster is a run's membership as its owner signs it: the peer ids
// that may take part in the run and a version number, signed with the
// owner's key, so that any peer can check a roster it is handed (in its
// config or by another peer) against the owner's peer id alone, and take
// the newest valid one. It defines the roster and its signed encoding;
// distributing rosters and admitting their members is the callers' work.
//
// Encoding, version 1 (big-endian):
//
//	"dtrain/roster\x00" (14 bytes) | format u8 = 1 | run length u16 | run |
//	version u64 | members u32 | each member: id length u8 | id bytes |
//	signature length u16 | signature
//
// The signature is the owner key's over every byte before the signature
// length. Members are sorted by their id bytes and unique, so one roster
// has one encoding.
package roster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Roster is the membership of run Run at version Version.
type Roster struct {
	Run     string
	Version uint64
	// Members are the admitted peers, sorted by their id bytes, unique.
	Members []peer.ID
}

// Bounds of the encoding.
const (
	// MaxMembers bounds a roster's members.
	MaxMembers = 1 << 16
	// MaxRunLen bounds the run id.
	MaxRunLen = 256
	// MaxIDLen bounds one member's id bytes (libp2p ids are under 64).
	MaxIDLen = 128
	// MaxSize bounds a whole encoding: every member at MaxIDLen, and room
	// for a signature.
	MaxSize = len(magic) + 1 + 2 + MaxRunLen + 8 + 4 + MaxMembers*(1+MaxIDLen) + 2 + maxSigLen

	maxSigLen = 1024
	format    = 1
	magic     = "dtrain/roster\x00"
)

// ErrInvalid marks an encoding that is malformed, too large, for another
// run, or not signed by the owner.
var ErrInvalid = errors.New("roster: invalid")

// Has reports whether p is a member.
func (r Roster) Has(p peer.ID) bool {
	_, ok := slices.BinarySearchFunc(r.Members, p, func(a, b peer.ID) int { return bytes.Compare([]byte(a), []byte(b)) })
	return ok
}

// New returns the roster of run at version with members, sorted and
// without repeats; it refuses an empty run, an empty or oversized id, and
// more than MaxMembers.
func New(run string, version uint64, members []peer.ID) (Roster, error) {
	if run == "" || len(run) > MaxRunLen {
		return Roster{}, fmt.Errorf("%w: run id of %d bytes, want 1 to %d", ErrInvalid, len(run), MaxRunLen)
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b peer.ID) int { return bytes.Compare([]byte(a), []byte(b)) })
	ms = slices.Compact(ms)
	if len(ms) > MaxMembers {
		return Roster{}, fmt.Errorf("%w: %d members, at most %d", ErrInvalid, len(ms), MaxMembers)
	}
	for _, m := range ms {
		if len(m) == 0 || len(m) > MaxIDLen {
			return Roster{}, fmt.Errorf("%w: member id of %d bytes, want 1 to %d", ErrInvalid, len(m), MaxIDLen)
		}
	}
	return Roster{Run: run, Version: version, Members: ms}, nil
}

// Sign encodes r (as New made it) signed with the owner's key.
func Sign(r Roster, owner crypto.PrivKey) ([]byte, error) {
	if _, err := New(r.Run, r.Version, r.Members); err != nil {
		return nil, err
	}
	body := r.body()
	sig, err := owner.Sign(body)
	if err != nil {
		return nil, fmt.Errorf("roster: sign: %w", err)
	}
	if len(sig) > maxSigLen {
		return nil, fmt.Errorf("roster: a signature of %d bytes, at most %d", len(sig), maxSigLen)
	}
	out := binary.BigEndian.AppendUint16(body, uint16(len(sig)))
	return append(out, sig...), nil
}

// body is the signed part of r's encoding; r's members are sorted.
func (r Roster) body() []byte {
	b := make([]byte, 0, len(magic)+1+2+len(r.Run)+8+4+len(r.Members)*40)
	b = append(b, magic...)
	b = append(b, format)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Run)))
	b = append(b, r.Run...)
	b = binary.BigEndian.AppendUint64(b, r.Version)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Members)))
	for _, m := range r.Members {
		b = append(b, byte(len(m)))
		b = append(b, m...)
	}
	return b
}

// Open decodes b and returns its roster if the owner signed it and it is
// run's; every other input is refused with ErrInvalid.
func Open(b []byte, owner peer.ID, run string) (Roster, error) {
	r, body, sig, err := parse(b)
	if err != nil {
		return Roster{}, err
	}
	if r.Run != run {
		return Roster{}, fmt.Errorf("%w: a roster of run %q, not %q", ErrInvalid, r.Run, run)
	}
	pub, err := owner.ExtractPublicKey()
	if err != nil {
		return Roster{}, fmt.Errorf("%w: owner %s: %v", ErrInvalid, owner, err)
	}
	if ok, err := pub.Verify(body, sig); err != nil || !ok {
		return Roster{}, fmt.Errorf("%w: not signed by the owner %s", ErrInvalid, owner)
	}
	return r, nil
}

// parse splits an encoding into its roster, the signed body and the
// signature, checking every bound and the members' order.
func parse(b []byte) (r Roster, body, sig []byte, err error) {
	bad := func(what string) (Roster, []byte, []byte, error) {
		return Roster{}, nil, nil, fmt.Errorf("%w: %s", ErrInvalid, what)
	}
	if len(b) > MaxSize {
		return bad(fmt.Sprintf("%d bytes, at most %d", len(b), MaxSize))
	}
	rest, ok := bytes.CutPrefix(b, []byte(magic))
	if !ok || len(rest) < 1+2 || rest[0] != format {
		return bad("not a roster of format 1")
	}
	n := int(binary.BigEndian.Uint16(rest[1:]))
	rest = rest[3:]
	if n == 0 || n > MaxRunLen || len(rest) < n+8+4 {
		return bad("short or bad run id")
	}
	r.Run = string(rest[:n])
	r.Version = binary.BigEndian.Uint64(rest[n:])
	count := binary.BigEndian.Uint32(rest[n+8:])
	rest = rest[n+12:]
	if count > MaxMembers {
		return bad(fmt.Sprintf("%d members, at most %d", count, MaxMembers))
	}
	r.Members = make([]peer.ID, 0, min(int(count), len(rest)/2))
	for range count {
		if len(rest) < 1 || rest[0] == 0 || int(rest[0]) > MaxIDLen || len(rest) < 1+int(rest[0]) {
			return bad("short or bad member id")
		}
		id := peer.ID(rest[1 : 1+int(rest[0])])
		if k := len(r.Members); k > 0 && bytes.Compare([]byte(r.Members[k-1]), []byte(id)) >= 0 {
			return bad("members not sorted and unique")
		}
		r.Members = append(r.Members, id)
		rest = rest[1+int(rest[0]):]
	}
	body = b[:len(b)-len(rest)]
	if len(rest) < 2 {
		return bad("no signature")
	}
	s := int(binary.BigEndian.Uint16(rest))
	if s == 0 || s > maxSigLen || len(rest) != 2+s {
		return bad("bad signature length")
	}
	return r, body, rest[2:], nil
}

// Decode returns the roster b encodes without checking its signature:
// for showing a file to its operator, never for admitting anyone (Open).
func Decode(b []byte) (Roster, error) {
	r, _, _, err := parse(b)
	return r, err
}
