package allreduce

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
)

// Committed contributions: what a validator audits must be provably what a
// miner put into the average.
//
// What is committed. A contributor's vector is encoded once, before the
// group forms, chunk by chunk (Chunk elements each, the last shorter)
// through the round's codec and its error feedback (Commit). What is
// committed is those encoded bytes: exactly what owners decode and average.
// The raw float32 vector is not: with int8 and error feedback the bytes
// depend on the sender's private residual, and only the bytes entered the
// average. The commitment is a Merkle root (commit_tree.go) over the
// SHA-256 of each chunk's bytes, bound to a CommitScope (run, epoch,
// member) and a CommitLayout (codec, length, chunk), so it names one byte
// string for one member of one matchmaking and nothing else.
//
// When. The root travels in the member's Ready announcement
// (node/matchmaking), which is part of every member's view of the group; a
// group forms only when all its members sent identical views, so every
// member of a round, the aux validator included, holds the same root for
// each member before any part flows. The chunks do not depend on how the
// vector is later cut into spans: a committed round aligns its spans to
// chunks (AlignSpans) and its part size to a multiple of Chunk, so each part
// is a run of whole chunks and its encoding is those chunks' bytes,
// concatenated (int8 blocks restart at every chunk, Chunk being a multiple
// of Int8BlockSize). Binding the scope only at the root lets a member that
// matchmakes again (another window) re-bind the same encoded chunks with
// one hash.
//
// Checked by every owner. A contributor's part carries the range proof of
// its chunks; its owner recomputes the root from the part's bytes and the
// proof and compares it with the member's agreed root before decoding
// anything (round_commit.go). A part that does not match is a Fault: the
// owner excludes the member from its report, so the round's contributors,
// the intersection of all reports, leave it out; the member is declared
// lost, so the spans it reduces move to the next reducer; the round ends
// with the exact mean of the others, or fails cleanly.
//
// Audited. A validator fetches a member's encoded vector (or a sample of
// its chunks, with proofs) and checks it against the same root
// (VerifyContribution, VerifyChunks); CommitLayout.Decode gives the values
// that entered the average.
//
// Why a member cannot send one thing to the round and another to the
// audit, nor different things to different owners: every check, by any
// owner and by the auditor, recomputes the same root from the bytes it
// holds. Two different byte strings for one chunk index that both verify
// against one root would give a SHA-256 collision (in a leaf, or in a node
// or the root on the way up: the tags keep leaves, nodes and roots apart,
// and the root fixes the number of leaves, hence which hashes a proof may
// combine). So all owners decoded chunks of one byte string, and an audit
// accepts only that string, provided the auditor takes the root from the
// round's group (or the Ready it received), never from the member when it
// audits. A member can announce different roots to
// different peers, but then their views differ and no group holds both.
//
// Cost: a member hashes its encoded vector once (one SHA-256 per chunk and
// per tree node) and an owner hashes each part it receives; both run at
// the speed of plain SHA-256 over the same bytes (BenchmarkCommitHash,
// BenchmarkVerifyParts report the ratio), about a tenth of the time those
// bytes take at 1 Gbit/s on one x86 core with SHA extensions. A part's
// proof is at most 2⌈log₂ chunks⌉ hashes: under 1 KiB for 124M values.
//
// What it does not cover by itself: an owner's values of its own span
// never leave it, and the span's mean is its owner's computation (both are
// what the members' owner checks sample: round_check.go, which recompute
// a range from every contributor's committed chunks, the owner's own
// included); a member can commit to garbage (auditing the committed values is the
// validator's work check); binding to a run and epoch does not stop a
// member from committing the same values again in a later round
// (staleness and copy checks are the validator's). If a round fails after
// Commit, the error feedback holds the residual of bytes nobody averaged.

// Root is a Merkle root committing to a member's encoded contribution; the
// zero Root commits to nothing.
type Root [32]byte

// IsZero reports whether r is the zero Root.
func (r Root) IsZero() bool { return r == Root{} }

// String is r in hex.
func (r Root) String() string { return hex.EncodeToString(r[:]) }

// MarshalText encodes r as 64 hex digits.
func (r Root) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses exactly 64 hex digits.
func (r *Root) UnmarshalText(b []byte) error {
	if len(b) != 2*len(r) {
		return fmt.Errorf("allreduce: root of %d hex digits, want %d", len(b), 2*len(r))
	}
	var out Root
	if _, err := hex.Decode(out[:], b); err != nil {
		return fmt.Errorf("allreduce: root: %w", err)
	}
	*r = out
	return nil
}

// CommitScope is what a root is bound to besides bytes: the matchmaking it
// is announced in (the Ready's run and epoch) and the member announcing it.
type CommitScope struct {
	Run    string
	Epoch  uint64
	Member string
}

// CommitLayout is how a contribution is cut and encoded: the codec, the
// vector's length in elements and the chunk size in elements.
type CommitLayout struct {
	Codec CodecID
	Len   int
	Chunk int
}

// DefaultCommitChunk is the chunk size, in elements, of committed rounds
// unless configured otherwise: a multiple of Int8BlockSize that divides
// DefaultPartSize, small enough that aligning spans to it moves a span's
// ends by at most 2048 values, and large enough that the tree of a 124M
// value vector has 30k leaves (a part's proof is then at most 30 hashes,
// under 1 KiB next to a 256 KiB part).
const DefaultCommitChunk = 1 << 12

// maxChunks bounds the chunk count: chunk indices travel as u32.
const maxChunks = math.MaxUint32

// Check validates the layout: a known codec, a length and chunk >= 1, at
// most 2³²−1 chunks, and a chunk that int8 can encode on its own.
func (l CommitLayout) Check() error {
	c, err := CodecByID(l.Codec)
	switch {
	case err != nil:
		return err
	case l.Len < 1 || l.Chunk < 1:
		return fmt.Errorf("commit layout: length %d, chunk %d: want both >= 1", l.Len, l.Chunk)
	case uint64(l.Len-1)/uint64(l.Chunk) >= maxChunks:
		return fmt.Errorf("commit layout: %d chunks of %d values, at most %d", l.Chunks(), l.Chunk, uint64(maxChunks))
	case l.Chunk > math.MaxInt32/4:
		return fmt.Errorf("commit layout: chunk of %d values, at most %d", l.Chunk, math.MaxInt32/4)
	case l.Chunk%codecAlign(c.ID()) != 0:
		return fmt.Errorf("commit layout: chunk of %d values for %v, want a multiple of %d", l.Chunk, c.ID(), codecAlign(c.ID()))
	}
	return nil
}

// codecAlign is the granularity at which a codec's encoding of a run of
// values is the concatenation of its pieces' encodings.
func codecAlign(id CodecID) int {
	if id == CodecInt8 {
		return Int8BlockSize
	}
	return 1
}

// Chunks is the number of chunks.
func (l CommitLayout) Chunks() int { return (l.Len + l.Chunk - 1) / l.Chunk }

// Bytes is the length of the whole encoded contribution.
func (l CommitLayout) Bytes() int { return l.bytesBefore(l.Len) }

// bytesBefore is where element e, a chunk boundary or Len, starts in the
// encoded contribution.
func (l CommitLayout) bytesBefore(e int) int {
	c := codecs[l.Codec]
	return e/l.Chunk*c.EncodedLen(l.Chunk) + c.EncodedLen(e%l.Chunk)
}

// ChunkRange is the byte range of chunks [first, first+count) in the
// encoded contribution (first+count at most Chunks()).
func (l CommitLayout) ChunkRange(first, count int) (lo, hi int) {
	return l.bytesBefore(first * l.Chunk), l.bytesBefore(min((first+count)*l.Chunk, l.Len))
}

// ErrCommitMismatch means bytes do not match the root they are checked
// against: a part or an audited vector that is not what its member
// committed to.
var ErrCommitMismatch = errors.New("allreduce: does not match the committed root")

// Contribution is a member's encoded vector and the Merkle tree over its
// chunks: what it sends in a committed round and serves to auditors. It is
// immutable once made, so rounds and an audit server may share it.
type Contribution struct {
	layout  CommitLayout
	encoded []byte
	levels  [][][32]byte
}

// Commit encodes vec chunk by chunk with codec, through fb when given
// (error feedback for codec over len(vec) values, which is advanced once,
// here: the round sends these bytes and never encodes again), and builds
// the tree. vec must be finite.
func Commit(vec []float32, codec Codec, chunk int, fb *ErrorFeedback) (*Contribution, error) {
	l := CommitLayout{Codec: codec.ID(), Len: len(vec), Chunk: chunk}
	if err := l.Check(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	if math.IsInf(codecMaxAbs(vec), 1) {
		return nil, errors.New("commit: vector holds NaN or Inf")
	}
	if fb != nil && (fb.Codec().ID() != codec.ID() || len(fb.Residual()) != len(vec)) {
		return nil, fmt.Errorf("commit: error feedback for %v over %d values, the vector is %v over %d",
			fb.Codec().ID(), len(fb.Residual()), codec.ID(), len(vec))
	}
	enc := make([]byte, 0, l.Bytes())
	for lo := 0; lo < len(vec); lo += chunk {
		x := vec[lo:min(lo+chunk, len(vec))]
		var err error
		if fb != nil {
			var b []byte
			if b, err = fb.Encode(enc, lo, x); err == nil {
				enc = b
			}
		}
		if fb == nil || err != nil {
			// Without feedback, or when the residual pushed a value past
			// float32's range (Encode then reset it): the plain values.
			enc = codec.Encode(enc, x)
		}
	}
	return newContribution(l, enc), nil
}

// newContribution hashes enc, already checked to be l.Bytes() long.
func newContribution(l CommitLayout, enc []byte) *Contribution {
	return &Contribution{layout: l, encoded: enc, levels: treeLevels(leafHashes(l, enc, 0, l.Chunks()))}
}

// leafHashes hashes chunks [first, first+count) whose bytes are b.
func leafHashes(l CommitLayout, b []byte, first, count int) [][32]byte {
	h := newLeafHasher()
	out := make([][32]byte, count)
	base, _ := l.ChunkRange(first, 0)
	for i := range out {
		lo, hi := l.ChunkRange(first+i, 1)
		out[i] = h.sum(b[lo-base : hi-base])
	}
	return out
}

// Layout is how c is cut and encoded.
func (c *Contribution) Layout() CommitLayout { return c.layout }

// Encoded is the whole encoded vector, chunk after chunk: what an auditor
// fetches. It is c's own: read it, do not modify it.
func (c *Contribution) Encoded() []byte { return c.encoded }

// Root is c's commitment in scope s.
func (c *Contribution) Root(s CommitScope) Root {
	return commitRoot(s, c.layout, c.levels[len(c.levels)-1][0])
}

// Chunks returns the bytes of chunks [first, first+count) and their range
// proof, or an error if the range is empty or outside c.
func (c *Contribution) Chunks(first, count int) ([]byte, [][32]byte, error) {
	if first < 0 || count < 1 || count > c.layout.Chunks()-first {
		return nil, nil, fmt.Errorf("chunks [%d, +%d) of a contribution of %d", first, count, c.layout.Chunks())
	}
	lo, hi := c.layout.ChunkRange(first, count)
	return c.encoded[lo:hi], rangeProof(c.levels, first, first+count), nil
}

// commitRoot binds a tree's top to a scope and a layout. Strings are
// length-prefixed, so no two scopes hash alike.
func commitRoot(s CommitScope, l CommitLayout, top [32]byte) Root {
	h := sha256.New()
	h.Write([]byte{tagRoot})
	h.Write([]byte("dtrain/allreduce/commit/v1"))
	var b [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	put(uint64(len(s.Run)))
	h.Write([]byte(s.Run))
	put(s.Epoch)
	put(uint64(len(s.Member)))
	h.Write([]byte(s.Member))
	h.Write([]byte{byte(l.Codec)})
	put(uint64(l.Len))
	put(uint64(l.Chunk))
	h.Write(top[:])
	var r Root
	h.Sum(r[:0])
	return r
}

// VerifyChunks checks that b is the encoding of chunks [first, first+n) of
// the contribution root commits to in scope s with layout l, n being the
// number of chunks b's length covers, using their range proof. It fails
// with ErrCommitMismatch unless it is.
func VerifyChunks(root Root, s CommitScope, l CommitLayout, first int, b []byte, proof [][32]byte) error {
	if err := l.Check(); err != nil {
		return fmt.Errorf("verify chunks: %w", err)
	}
	n := l.Chunks()
	if first < 0 || first >= n {
		return fmt.Errorf("verify chunk %d of %d: %w", first, n, ErrCommitMismatch)
	}
	// A run of chunks is whole chunks, the last possibly the shorter
	// final one, which encodes to fewer bytes than a whole chunk.
	count := (len(b) + codecs[l.Codec].EncodedLen(l.Chunk) - 1) / codecs[l.Codec].EncodedLen(l.Chunk)
	if count < 1 || count > n-first {
		return fmt.Errorf("verify chunks from %d of %d: %d bytes: %w", first, n, len(b), ErrCommitMismatch)
	}
	if lo, hi := l.ChunkRange(first, count); hi-lo != len(b) {
		return fmt.Errorf("verify chunks from %d: %d bytes are no whole run of chunks: %w", first, len(b), ErrCommitMismatch)
	}
	top, err := rangeTop(n, first, leafHashes(l, b, first, count), proof)
	if err != nil {
		return fmt.Errorf("verify chunks [%d, %d): %v: %w", first, first+count, err, ErrCommitMismatch)
	}
	if commitRoot(s, l, top) != root {
		return fmt.Errorf("verify chunks [%d, %d) of %s: %w", first, first+count, s.Member, ErrCommitMismatch)
	}
	return nil
}

// VerifyContribution checks that enc is the whole encoded contribution root
// commits to in scope s with layout l: what an auditor calls on a vector
// fetched from the member. It fails with ErrCommitMismatch unless it is.
func VerifyContribution(root Root, s CommitScope, l CommitLayout, enc []byte) error {
	if err := l.Check(); err != nil {
		return fmt.Errorf("verify contribution: %w", err)
	}
	if len(enc) != l.Bytes() {
		return fmt.Errorf("verify contribution of %s: %d bytes, the layout has %d: %w", s.Member, len(enc), l.Bytes(), ErrCommitMismatch)
	}
	if newContribution(l, enc).Root(s) != root {
		return fmt.Errorf("verify contribution of %s: %w", s.Member, ErrCommitMismatch)
	}
	return nil
}

// Decode decodes a whole encoded contribution with layout l: the values
// its owners averaged. It fails, wrapping ErrBadEncoding, on bytes no
// sender's codec produces.
func (l CommitLayout) Decode(enc []byte) ([]float32, error) {
	if err := l.Check(); err != nil {
		return nil, fmt.Errorf("decode contribution: %w", err)
	}
	if len(enc) != l.Bytes() {
		return nil, fmt.Errorf("decode contribution: %d bytes, the layout has %d: %w", len(enc), l.Bytes(), ErrBadEncoding)
	}
	out := make([]float32, l.Len)
	if err := l.decodeRange(out, enc, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// decodeRange decodes the chunks starting at chunk first from b into dst,
// whose length is a whole run of chunks (the last may end at Len).
func (l CommitLayout) decodeRange(dst []float32, b []byte, first int) error {
	c := codecs[l.Codec]
	for lo := 0; lo < len(dst); lo += l.Chunk {
		hi := min(lo+l.Chunk, len(dst))
		k := min(c.EncodedLen(hi-lo), len(b)) // a short b fails Decode's length check
		if err := c.Decode(dst[lo:hi], b[:k]); err != nil {
			return fmt.Errorf("chunk %d: %w", first+lo/l.Chunk, err)
		}
		b = b[k:]
	}
	if len(b) != 0 {
		return fmt.Errorf("%d bytes past the chunks: %w", len(b), ErrBadEncoding)
	}
	return nil
}
