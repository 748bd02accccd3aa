package state

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"
)

// Every manifest a donor may send (each allowed chunk size) hashes to the
// state's hash, for blobs of every shape of tree (odd levels, a short last
// piece, one piece, empty); any change to a hash, a hash too many or too
// few, or another size is refused.
func TestManifestProvesItself(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, size := range []int{0, 1, LeafSize - 1, LeafSize, LeafSize + 1, 3 * LeafSize, 5*LeafSize + 17, 64*LeafSize + 3} {
		blob := make([]byte, size)
		rng.Read(blob)
		want := Hash(blob)
		for chunk := MinChunk; chunk <= MaxRequest; chunk *= 2 {
			m := levelOf(blob, chunk)
			if err := checkManifest(m, chunk, want, int64(size)); err != nil {
				t.Fatalf("size %d, chunk %d: the honest manifest: %v", size, chunk, err)
			}
			for i, h := range m {
				off := i * chunk
				if got := chunkHash(blob[min(off, size):min(off+chunk, size)]); got != h {
					t.Fatalf("size %d, chunk %d: chunk %d hashes to another node", size, chunk, i)
				}
			}
			bad := bytes.Clone(m[len(m)-1][:])
			bad[0] ^= 1
			tampered := append(append([][32]byte{}, m[:len(m)-1]...), [32]byte(bad))
			for name, l := range map[string][][32]byte{"tampered": tampered, "one more": append(append([][32]byte{}, m...), m[0]), "one fewer": m[:len(m)-1]} {
				if err := checkManifest(l, chunk, want, int64(size)); !errors.Is(err, errManifest) {
					t.Fatalf("size %d, chunk %d: %s manifest: %v", size, chunk, name, err)
				}
			}
			if err := checkManifest(m, chunk, want, int64(size)+1); !errors.Is(err, errManifest) {
				t.Fatalf("size %d, chunk %d: the manifest checks for another size", size, chunk)
			}
		}
	}
}
