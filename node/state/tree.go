package state

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// A state's hash is the root of a binary hash tree over its blob, so that
// a manifest proves itself: a joiner checks the per-chunk hashes any one
// donor sends against the hash it wants, and then every chunk against
// them, with no vote among donors (which fresh identities could win).
//
// The leaves are the SHA-256 of each LeafSize piece of the blob (the last
// shorter), tagged 0; a node is the SHA-256 of tag 1 and its two children;
// a level's odd last node moves up unchanged. So the node at level k,
// index j covers exactly pieces [j·2ᵏ, (j+1)·2ᵏ) of the blob, and the
// manifest of chunk size LeafSize·2ᵏ (every chunk size the protocol
// allows) is level k. The hash is the SHA-256 of tag 2, the blob's size
// and the top node, so one top names one length.

// LeafSize is the piece of a blob that the tree hashes on its own: the
// smallest chunk size.
const LeafSize = MinChunk

// Tree tags keep leaves, nodes and the root apart.
const (
	tagLeaf = 0
	tagNode = 1
	tagRoot = 2
)

// errManifest marks a manifest that does not hash to the state wanted.
var errManifest = errors.New("manifest does not hash to the state")

// Hash is the state hash of blob: its tree's root bound to its size.
func Hash(blob []byte) [32]byte {
	return rootOf(levelOf(blob, LeafSize), int64(len(blob)))
}

// levelOf returns the tree's nodes that each cover chunk bytes of blob
// (chunk a power-of-two multiple of LeafSize): the manifest at chunk.
func levelOf(blob []byte, chunk int) [][32]byte {
	out := make([][32]byte, max(1, chunkCount(int64(len(blob)), chunk)))
	for i := range out {
		out[i] = chunkHash(blob[min(i*chunk, len(blob)):min((i+1)*chunk, len(blob))])
	}
	return out
}

// chunkHash is the tree node over one chunk of a blob: its pieces'
// leaves, combined up to one node. A chunk starts on a multiple of its own
// size, so its subtree is the blob's.
func chunkHash(chunk []byte) [32]byte {
	n := max(1, (len(chunk)+LeafSize-1)/LeafSize)
	level := make([][32]byte, n)
	for i := range level {
		level[i] = leafHash(chunk[min(i*LeafSize, len(chunk)):min((i+1)*LeafSize, len(chunk))])
	}
	for len(level) > 1 {
		level = up(level)
	}
	return level[0]
}

// rootOf combines a level of the tree (a manifest, of any chunk size) up
// to the top and binds it to size.
func rootOf(level [][32]byte, size int64) [32]byte {
	for len(level) > 1 {
		level = up(level)
	}
	var top [32]byte
	if len(level) == 1 {
		top = level[0]
	}
	b := make([]byte, 0, 1+8+32)
	b = append(b, tagRoot)
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	b = append(b, top[:]...)
	return sha256.Sum256(b)
}

// checkManifest reports whether hashes is the manifest at chunk of the
// state named want of size bytes.
func checkManifest(hashes [][32]byte, chunk int, want [32]byte, size int64) error {
	if n := max(1, chunkCount(size, chunk)); len(hashes) != n {
		return fmt.Errorf("%w: %d hashes for %d chunks", errManifest, len(hashes), n)
	}
	if bits.OnesCount(uint(chunk/LeafSize)) != 1 || chunk%LeafSize != 0 {
		return fmt.Errorf("%w: chunk of %d bytes", errManifest, chunk)
	}
	if rootOf(hashes, size) != want {
		return errManifest
	}
	return nil
}

// up is the next level of the tree.
func up(level [][32]byte) [][32]byte {
	out := make([][32]byte, 0, (len(level)+1)/2)
	var b [1 + 64]byte
	b[0] = tagNode
	for i := 0; i+1 < len(level); i += 2 {
		copy(b[1:], level[i][:])
		copy(b[33:], level[i+1][:])
		out = append(out, sha256.Sum256(b[:]))
	}
	if len(level)%2 == 1 {
		out = append(out, level[len(level)-1])
	}
	return out
}

func leafHash(piece []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{tagLeaf})
	h.Write(piece)
	var out [32]byte
	h.Sum(out[:0])
	return out
}
