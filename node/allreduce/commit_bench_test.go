package allreduce

import (
	"crypto/sha256"
	"testing"
	"time"
)

// benchCommitBytes is the size of the vectors the commitment benchmarks
// hash: 100 MB of encoded parts.
const benchCommitBytes = 100_000_000

// gigabitBytesPerSecond is a 1 Gbit/s link's payload rate.
const gigabitBytesPerSecond = 1e9 / 8

// timeAgainstSHA256 runs op b.N times, each after one plain SHA-256 of
// the same bytes (the baseline, interleaved so that both see the same load
// on a shared machine), and reports op's MB/s, its time as a multiple of
// the baseline's, and its time as a percentage of the time those bytes take
// to cross a 1 Gbit/s link: the share of a round at that rate spent
// hashing what the round moves.
func timeAgainstSHA256(b *testing.B, bytes []byte, op func()) {
	var base, took time.Duration
	b.ResetTimer()
	for range b.N {
		t := time.Now()
		sha256.Sum256(bytes)
		base += time.Since(t)
		t = time.Now()
		op()
		took += time.Since(t)
	}
	b.StopTimer()
	perOp := took.Seconds() / float64(b.N)
	b.ReportMetric(float64(len(bytes))/perOp/1e6, "MB/s-hashed")
	b.ReportMetric(took.Seconds()/base.Seconds(), "x-plain-sha256")
	b.ReportMetric(100*perOp/(float64(len(bytes))/gigabitBytesPerSecond), "%of-1Gbit/s-transfer")
}

// BenchmarkCommitHash: a member commits to 100 MB of encoded chunks (the
// leaves and the tree; the encoding is the codec's cost, paid without
// commitments too).
func BenchmarkCommitHash(b *testing.B) {
	l := CommitLayout{Codec: CodecNone, Len: benchCommitBytes / 4, Chunk: DefaultCommitChunk}
	enc := codecs[CodecNone].Encode(nil, randomVector(newTestRand(), l.Len))
	timeAgainstSHA256(b, enc, func() { newContribution(l, enc) })
}

// BenchmarkVerifyParts: an owner checks 100 MB of received parts
// (DefaultPartSize values each, with their range proofs) against the
// sender's root, as a committed round does for every part before decoding
// it.
func BenchmarkVerifyParts(b *testing.B) {
	vec := randomVector(newTestRand(), benchCommitBytes/4)
	c, err := Commit(vec, codecs[CodecNone], DefaultCommitChunk, nil)
	if err != nil {
		b.Fatal(err)
	}
	l, root := c.Layout(), c.Root(testScope)
	perPart := DefaultPartSize / DefaultCommitChunk
	type part struct {
		first int
		b     []byte
		proof [][32]byte
	}
	var parts []part
	for first := 0; first < l.Chunks(); first += perPart {
		pb, proof, _ := c.Chunks(first, min(perPart, l.Chunks()-first))
		parts = append(parts, part{first, pb, proof})
	}
	timeAgainstSHA256(b, c.Encoded(), func() {
		for _, p := range parts {
			if err := VerifyChunks(root, testScope, l, p.first, p.b, p.proof); err != nil {
				b.Fatal(err)
			}
		}
	})
}
