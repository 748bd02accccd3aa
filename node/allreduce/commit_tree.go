package allreduce

import (
	"crypto/sha256"
	"errors"
	"hash"
)

// The Merkle tree of a committed contribution. Leaves are the SHA-256 of
// each chunk's encoded bytes; a level with an odd number of nodes promotes
// its last node unchanged (no duplication, so no two leaf sequences share
// a tree: the pitfall of Bitcoin's duplicated last node, CVE-2012-2459);
// the top is the single node left. Leaves, inner nodes and the root (the
// top bound to its scope and layout, commit.go) hash distinct one-byte
// tags, so no node can pass for another kind (RFC 6962 §2.1 does the same
// for leaves and nodes). The number of leaves follows from the layout the
// root binds, so the shape of the tree is fixed by the root.
//
// A range proof for leaves [lo, hi) is, level by level from the leaves up,
// the left neighbour of the range when lo is odd and the right neighbour
// when hi is odd and not the level's end: at most two hashes per level,
// 2·⌈log₂ n⌉ in all, whatever the range's length.

// Hash tags: one byte in front of everything hashed.
const (
	tagLeaf = 0x00
	tagNode = 0x01
	tagRoot = 0x02
)

// maxProofLen bounds a proof on the wire: two hashes per level of a tree of
// at most 2³² leaves (chunk indices are u32 on the wire).
const maxProofLen = 2 * 32

var errProof = errors.New("proof does not fit the tree")

// leafHasher hashes leaves with one reused SHA-256 state.
type leafHasher struct{ h hash.Hash }

func newLeafHasher() leafHasher { return leafHasher{h: sha256.New()} }

func (l leafHasher) sum(chunk []byte) (out [32]byte) {
	l.h.Reset()
	l.h.Write([]byte{tagLeaf})
	l.h.Write(chunk)
	l.h.Sum(out[:0])
	return out
}

func nodeHash(left, right [32]byte) [32]byte {
	var b [1 + 64]byte
	b[0] = tagNode
	copy(b[1:], left[:])
	copy(b[33:], right[:])
	return sha256.Sum256(b[:])
}

// treeLevels builds every level of the tree over leaves, leaves first; the
// last level holds the top alone.
func treeLevels(leaves [][32]byte) [][][32]byte {
	levels := [][][32]byte{leaves}
	for cur := leaves; len(cur) > 1; {
		next := make([][32]byte, (len(cur)+1)/2)
		for j := range next {
			if 2*j+1 < len(cur) {
				next[j] = nodeHash(cur[2*j], cur[2*j+1])
			} else {
				next[j] = cur[2*j]
			}
		}
		levels = append(levels, next)
		cur = next
	}
	return levels
}

// treeDepth is the number of levels above the leaves of a tree of n leaves.
func treeDepth(n int) int {
	d := 0
	for ; n > 1; n = (n + 1) / 2 {
		d++
	}
	return d
}

// rangeProof is the proof for leaves [lo, hi) of the tree levels.
func rangeProof(levels [][][32]byte, lo, hi int) [][32]byte {
	var proof [][32]byte
	for _, lv := range levels[:len(levels)-1] {
		if lo%2 == 1 {
			proof = append(proof, lv[lo-1])
			lo--
		}
		if hi%2 == 1 && hi < len(lv) {
			proof = append(proof, lv[hi])
			hi++
		}
		lo, hi = lo/2, (hi+1)/2
	}
	return proof
}

// rangeTop recomputes the top of a tree of n leaves from the hashes of
// leaves [lo, lo+len(leaves)) and their range proof, consuming the proof
// exactly as rangeProof builds it. It fails if the proof is too short or
// too long; a wrong hash anywhere yields a different top.
func rangeTop(n, lo int, leaves, proof [][32]byte) ([32]byte, error) {
	hi := lo + len(leaves)
	if lo < 0 || len(leaves) == 0 || hi > n {
		return [32]byte{}, errProof
	}
	nodes := append(make([][32]byte, 0, len(leaves)+2), leaves...)
	for w := n; w > 1; w = (w + 1) / 2 {
		if lo%2 == 1 {
			if len(proof) == 0 {
				return [32]byte{}, errProof
			}
			nodes = append([][32]byte{proof[0]}, nodes...)
			proof, lo = proof[1:], lo-1
		}
		if hi%2 == 1 && hi < w {
			if len(proof) == 0 {
				return [32]byte{}, errProof
			}
			nodes = append(nodes, proof[0])
			proof, hi = proof[1:], hi+1
		}
		// lo is even, and hi is even or the level's odd end, whose node
		// is promoted.
		next := nodes[:0]
		for j := 0; j < len(nodes); j += 2 {
			if j+1 < len(nodes) {
				next = append(next, nodeHash(nodes[j], nodes[j+1]))
			} else {
				next = append(next, nodes[j])
			}
		}
		nodes, lo, hi = next, lo/2, (hi+1)/2
	}
	if len(proof) != 0 {
		return [32]byte{}, errProof
	}
	return nodes[0], nil
}
