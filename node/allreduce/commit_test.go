package allreduce

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

var testScope = CommitScope{Run: "run/7", Epoch: 3, Member: "alice"}

// TestCommitVerifyChunks: for every codec and lengths that do and do not
// end on a chunk, every run of chunks verifies with its proof, and a
// flipped byte, a wrong first index, a cut or grown payload, another
// scope or layout, or another root is ErrCommitMismatch.
func TestCommitVerifyChunks(t *testing.T) {
	rng := newTestRand()
	for _, name := range []string{"none", "fp16", "bf16", "int8"} {
		codec := mustCodec(t, name)
		for _, n := range []int{1, 255, 256, 257, 1000, 2048, 2049} {
			vec := randomVector(rng, n)
			c, err := Commit(vec, codec, 256, nil)
			if err != nil {
				t.Fatal(err)
			}
			l, root := c.Layout(), c.Root(testScope)
			chunks := l.Chunks()
			for first := 0; first < chunks; first++ {
				for count := 1; first+count <= chunks; count++ {
					b, proof, err := c.Chunks(first, count)
					if err != nil {
						t.Fatal(err)
					}
					if err := VerifyChunks(root, testScope, l, first, b, proof); err != nil {
						t.Fatalf("%s n=%d [%d,+%d): %v", name, n, first, count, err)
					}
					checkChunkTampering(t, root, l, first, b, proof)
				}
			}
		}
	}
}

func checkChunkTampering(t *testing.T, root Root, l CommitLayout, first int, b []byte, proof [][32]byte) {
	t.Helper()
	mismatch := func(what string, root Root, s CommitScope, l CommitLayout, first int, b []byte) {
		t.Helper()
		if err := VerifyChunks(root, s, l, first, b, proof); !errors.Is(err, ErrCommitMismatch) {
			t.Fatalf("%v [%d, %d bytes): %s: %v, want ErrCommitMismatch", l, first, len(b), what, err)
		}
	}
	flip := bytes.Clone(b)
	flip[len(flip)/2] ^= 0x10
	mismatch("a flipped byte", root, testScope, l, first, flip)
	if first+1 < l.Chunks() {
		mismatch("the next index", root, testScope, l, first+1, b)
	}
	if first > 0 {
		mismatch("the previous index", root, testScope, l, first-1, b)
	}
	mismatch("a byte cut", root, testScope, l, first, b[:len(b)-1])
	mismatch("a byte more", root, testScope, l, first, append(bytes.Clone(b), 0))
	mismatch("another member", root, CommitScope{Run: testScope.Run, Epoch: testScope.Epoch, Member: "bob"}, l, first, b)
	mismatch("another epoch", root, CommitScope{Run: testScope.Run, Epoch: 4, Member: testScope.Member}, l, first, b)
	mismatch("another run", root, CommitScope{Run: "run/8", Epoch: 3, Member: testScope.Member}, l, first, b)
	longer := l
	longer.Len += l.Chunk
	mismatch("another length", root, testScope, longer, first, b)
	other := root
	other[0] ^= 1
	mismatch("another root", other, testScope, l, first, b)
}

// TestCommitScopeUnambiguous: scopes whose concatenated strings are equal
// still commit differently.
func TestCommitScopeUnambiguous(t *testing.T) {
	c, err := Commit([]float32{1, 2, 3}, mustCodec(t, "none"), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Root(CommitScope{Run: "ab", Member: "c"})
	b := c.Root(CommitScope{Run: "a", Member: "bc"})
	if a == b {
		t.Fatal(`scopes ("ab","c") and ("a","bc") share a root`)
	}
}

// TestCommitChunksSeparable: a committed contribution's bytes for any run
// of chunks are what the round would send for a part over those values
// without a commitment, with and without error feedback (int8's blocks
// restart at each chunk), so a committed round averages what an
// uncommitted one would.
func TestCommitChunksSeparable(t *testing.T) {
	rng := newTestRand()
	for _, name := range []string{"none", "fp16", "bf16", "int8"} {
		codec := mustCodec(t, name)
		const n, chunk, part = 5000, 512, 1536
		vec := randomVector(rng, n)
		for _, feedback := range []bool{false, true} {
			var fbCommit, fbParts *ErrorFeedback
			if feedback {
				fbCommit, fbParts = NewErrorFeedback(codec, n), NewErrorFeedback(codec, n)
				// A residual from an earlier round, the same on both.
				for i := range n {
					r := float32(rng.NormFloat64() * 0.01)
					fbCommit.Residual()[i], fbParts.Residual()[i] = r, r
				}
			}
			c, err := Commit(vec, codec, chunk, fbCommit)
			if err != nil {
				t.Fatal(err)
			}
			for lo := 0; lo < n; lo += part {
				hi := min(lo+part, n)
				want := codec.Encode(nil, vec[lo:hi])
				if feedback {
					want, _ = fbParts.Encode(nil, lo, vec[lo:hi])
				}
				got, _, _ := c.Chunks(lo/chunk, (hi-lo+chunk-1)/chunk)
				if !bytes.Equal(got, want) {
					t.Fatalf("%s feedback=%v: part [%d,%d) committed bytes differ from the part's encoding", name, feedback, lo, hi)
				}
			}
			if feedback && !slices.Equal(fbCommit.Residual(), fbParts.Residual()) {
				t.Fatalf("%s: the residual after Commit differs from the one after sending parts", name)
			}
		}
	}
}

// TestAuditContribution: the auditor accepts exactly the committed bytes
// and decodes them to the values owners averaged; a different vector served
// to the audit than the one committed (one value changed, another vector of
// the same shape, the right vector under another codec, a prefix) fails.
func TestAuditContribution(t *testing.T) {
	rng := newTestRand()
	none := mustCodec(t, "none")
	vec := randomVector(rng, 10000)
	c, err := Commit(vec, none, DefaultCommitChunk, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, root := c.Layout(), c.Root(testScope)
	if err := VerifyContribution(root, testScope, l, c.Encoded()); err != nil {
		t.Fatal(err)
	}
	got, err := l.Decode(c.Encoded())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, vec) {
		t.Fatal("the audited vector decodes to other values than committed")
	}
	changed := slices.Clone(vec)
	changed[9999] = math.Nextafter32(changed[9999], 1e9)
	other := randomVector(rng, 10000)
	served := map[string][]byte{
		"one value changed": mustCommit(t, changed, none).Encoded(),
		"another vector":    mustCommit(t, other, none).Encoded(),
		"a prefix":          c.Encoded()[:l.Bytes()-4],
	}
	for what, enc := range served {
		if err := VerifyContribution(root, testScope, l, enc); !errors.Is(err, ErrCommitMismatch) {
			t.Errorf("%s: %v, want ErrCommitMismatch", what, err)
		}
	}
	fp16 := mustCommit(t, vec, mustCodec(t, "fp16"))
	if err := VerifyContribution(root, testScope, fp16.Layout(), fp16.Encoded()); !errors.Is(err, ErrCommitMismatch) {
		t.Errorf("the same values under fp16: %v, want ErrCommitMismatch", err)
	}
}

func mustCommit(t *testing.T, vec []float32, c Codec) *Contribution {
	t.Helper()
	out, err := Commit(vec, c, DefaultCommitChunk, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCommitRejects: bad layouts and vectors are refused up front.
func TestCommitRejects(t *testing.T) {
	none, int8c := mustCodec(t, "none"), mustCodec(t, "int8")
	cases := []struct {
		name  string
		vec   []float32
		codec Codec
		chunk int
		fb    *ErrorFeedback
	}{
		{"empty", nil, none, 4, nil},
		{"chunk 0", []float32{1}, none, 0, nil},
		{"NaN", []float32{1, float32(math.NaN())}, none, 4, nil},
		{"int8 chunk off its blocks", make([]float32, 600), int8c, 300, nil},
		{"feedback of another length", make([]float32, 8), none, 4, NewErrorFeedback(none, 9)},
		{"feedback of another codec", make([]float32, 8), none, 4, NewErrorFeedback(int8c, 8)},
	}
	for _, c := range cases {
		if _, err := Commit(c.vec, c.codec, c.chunk, c.fb); err == nil {
			t.Errorf("%s: committed", c.name)
		}
	}
	if _, err := (CommitLayout{Codec: CodecNone, Len: 4, Chunk: 2}).Decode(make([]byte, 15)); !errors.Is(err, ErrBadEncoding) {
		t.Errorf("decoding 15 bytes for 4 values: %v", err)
	}
}

// TestRootText: roots travel as 64 hex digits and nothing else parses.
func TestRootText(t *testing.T) {
	r := Root{0: 0xab, 31: 0x01}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Root
	if err := json.Unmarshal(b, &back); err != nil || back != r {
		t.Fatalf("round trip of %s: %v, %v", b, back, err)
	}
	for _, bad := range []string{`""`, `"ab"`, `"` + r.String() + `0"`, `"` + r.String()[:62] + `zz"`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("parsed %s", bad)
		}
	}
}

// TestAlignSpans: aligned spans still tile [0, n) in order, start on chunk
// boundaries and differ from the input by at most a chunk each.
func TestAlignSpans(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 500; trial++ {
		n, r := 1+rng.IntN(100000), 1+rng.IntN(12)
		chunk := 1 + rng.IntN(5000)
		reduces := make([]bool, r)
		bw := make([]float64, r)
		for i := range reduces {
			reduces[i], bw[i] = true, rng.Float64()
		}
		spans, err := Spans(n, bw, reduces)
		if err != nil {
			t.Fatal(err)
		}
		got := AlignSpans(spans, chunk, n)
		at := 0
		for k, s := range got {
			if s.Peer != spans[k].Peer || s.Begin != at || s.End < s.Begin || (s.Begin%chunk != 0 && s.Begin != n) {
				t.Fatalf("n=%d chunk=%d: span %d is %+v after %d", n, chunk, k, s, at)
			}
			if d := s.Len() - spans[k].Len(); d > chunk || d < -chunk {
				t.Fatalf("n=%d chunk=%d: span %d moved by %d", n, chunk, k, d)
			}
			at = s.End
		}
		if at != n {
			t.Fatalf("n=%d: aligned spans end at %d", n, at)
		}
	}
}

// FuzzVerifyChunks: whatever a peer sends as a run of chunks and its proof,
// checking it never panics, and it passes only when the bytes are exactly
// the committed chunks from that index.
func FuzzVerifyChunks(f *testing.F) {
	c, err := Commit(randomVector(newTestRand(), 2049), mustCodec(f, "int8"), 256, nil)
	if err != nil {
		f.Fatal(err)
	}
	l, root := c.Layout(), c.Root(testScope)
	for _, r := range [][2]int{{0, 1}, {3, 4}, {8, 1}, {0, 9}} {
		b, proof, _ := c.Chunks(r[0], r[1])
		var pb []byte
		for _, h := range proof {
			pb = append(pb, h[:]...)
		}
		f.Add(uint16(r[0]), b, pb)
	}
	f.Fuzz(func(t *testing.T, first uint16, b, pb []byte) {
		proof := make([][32]byte, len(pb)/32)
		for i := range proof {
			copy(proof[i][:], pb[32*i:])
		}
		if err := VerifyChunks(root, testScope, l, int(first), b, proof); err != nil {
			if !errors.Is(err, ErrCommitMismatch) {
				t.Fatalf("error %v does not wrap ErrCommitMismatch", err)
			}
			return
		}
		lo, _ := l.ChunkRange(int(first), 0)
		want := c.Encoded()[lo : lo+len(b)]
		if !bytes.Equal(b, want) {
			t.Fatalf("accepted bytes at chunk %d that differ from the committed ones", first)
		}
	})
}
