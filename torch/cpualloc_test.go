package torch

import (
	"math/rand/v2"
	"os"
	"testing"
)

// After its first steps a training loop's large tensors all come from
// blocks the caching CPU allocator kept: a third identical step maps
// nothing new, and it reuses blocks.
func TestCPUCacheReusesSteps(t *testing.T) {
	if os.Getenv("DTRAIN_CPU_ALLOC") == "malloc" {
		t.Skip("DTRAIN_CPU_ALLOC=malloc: libtorch's own allocator")
	}
	// Attention scores of [B·H, T, T] floats are 4 MiB here, the MLP's
	// activations 2 MiB: above the 1 MiB the cache starts at.
	c := NewConfig(2, 4, 128, 256, 2048)
	m := newTestModel(t, c, 9)
	b := randomBatch(rand.New(rand.NewPCG(9, 10)), 4, 256, c.VocabSize)
	var after []CPUCache
	for range 3 {
		m.ZeroGrad()
		if _, _, err := m.TrainStep(b, 1); err != nil {
			t.Fatal(err)
		}
		s, err := CPUCacheStats()
		if err != nil {
			t.Fatal(err)
		}
		if !s.Installed {
			t.Fatal("the caching CPU allocator is not installed")
		}
		after = append(after, s)
	}
	second, third := after[1], after[2]
	if third.Misses != second.Misses || third.MappedBytes != second.MappedBytes {
		t.Fatalf("the third step mapped new blocks: %+v after the second, %+v after the third", second, third)
	}
	if third.Hits <= second.Hits {
		t.Fatalf("the third step reused no block: %+v, then %+v", second, third)
	}
	t.Logf("after 3 steps: %+v", third)
}
