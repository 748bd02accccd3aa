package allreduce

import (
	"crypto/sha256"
	"errors"
	"testing"
)

func testLeaves(n int) [][32]byte {
	leaves := make([][32]byte, n)
	for i := range leaves {
		leaves[i] = sha256.Sum256([]byte{byte(i), byte(i >> 8)})
	}
	return leaves
}

// TestTreeRangeProofs: for every leaf count up to 40 (odd and even levels
// everywhere) and every range, the proof recomputes the top, is at most two
// hashes per level, and any tampering is caught: a changed leaf or proof
// hash, the range shifted by one, a proof cut short or padded.
func TestTreeRangeProofs(t *testing.T) {
	for n := 1; n <= 40; n++ {
		leaves := testLeaves(n)
		levels := treeLevels(leaves)
		top := levels[len(levels)-1][0]
		if len(levels[len(levels)-1]) != 1 || len(levels)-1 != treeDepth(n) {
			t.Fatalf("n=%d: %d levels, top level of %d, depth %d", n, len(levels), len(levels[len(levels)-1]), treeDepth(n))
		}
		for lo := 0; lo < n; lo++ {
			for hi := lo + 1; hi <= n; hi++ {
				proof := rangeProof(levels, lo, hi)
				if len(proof) > 2*treeDepth(n) {
					t.Fatalf("n=%d [%d,%d): proof of %d hashes, depth %d", n, lo, hi, len(proof), treeDepth(n))
				}
				got, err := rangeTop(n, lo, leaves[lo:hi], proof)
				if err != nil || got != top {
					t.Fatalf("n=%d [%d,%d): top %x, %v; want %x", n, lo, hi, got[:4], err, top[:4])
				}
				checkTampered(t, n, lo, hi, leaves, proof, top)
			}
		}
	}
}

func checkTampered(t *testing.T, n, lo, hi int, leaves, proof [][32]byte, top [32]byte) {
	t.Helper()
	fails := func(what string, lo int, ls, p [][32]byte) {
		t.Helper()
		if got, err := rangeTop(n, lo, ls, p); err == nil && got == top {
			t.Fatalf("n=%d [%d,%d): %s still gives the top", n, lo, hi, what)
		}
	}
	ls := append([][32]byte(nil), leaves[lo:hi]...)
	ls[len(ls)/2][7] ^= 1
	fails("a tampered leaf", lo, ls, proof)
	if len(proof) > 0 {
		p := append([][32]byte(nil), proof...)
		p[len(p)-1][0] ^= 1
		fails("a tampered proof hash", lo, leaves[lo:hi], p)
		fails("a truncated proof", lo, leaves[lo:hi], proof[:len(proof)-1])
	}
	fails("a padded proof", lo, leaves[lo:hi], append(append([][32]byte(nil), proof...), [32]byte{}))
	if hi < n {
		fails("the range one to the right", lo+1, leaves[lo:hi], proof)
	}
	if lo > 0 {
		fails("the range one to the left", lo-1, leaves[lo:hi], proof)
	}
	if hi-lo > 1 {
		fails("a leaf left out", lo, leaves[lo:hi-1], proof)
	}
}

// TestTreeOddNodeNotDuplicated: with the last node promoted rather than
// paired with itself, the tree of [a, b, c] differs from that of
// [a, b, c, c] (the duplication that let Bitcoin's trees of different
// transaction lists share a root).
func TestTreeOddNodeNotDuplicated(t *testing.T) {
	l := testLeaves(3)
	three := treeLevels(l)
	four := treeLevels(append(l, l[2]))
	if three[len(three)-1][0] == four[len(four)-1][0] {
		t.Fatal("three leaves and the same with the last repeated share a top")
	}
}

// TestTreeProofBounds: rangeTop refuses ranges outside the tree.
func TestTreeProofBounds(t *testing.T) {
	leaves := testLeaves(5)
	for _, c := range []struct{ n, lo, count int }{{5, -1, 1}, {5, 5, 1}, {5, 4, 2}, {5, 0, 0}} {
		if _, err := rangeTop(c.n, c.lo, leaves[:c.count], nil); !errors.Is(err, errProof) {
			t.Errorf("range %d+%d of %d: %v, want errProof", c.lo, c.count, c.n, err)
		}
	}
}
