package data

import (
	"fmt"
	"math"
	"testing"
)

func mustOrder(t *testing.T, run string, seed uint64, windows int64) Order {
	t.Helper()
	o, err := NewOrder(run, seed, windows)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// laneText is the first samples' windows and dropout seeds of a lane.
func laneText(l Lane) string {
	s := ""
	for k := int64(0); k < 6; k++ {
		s += fmt.Sprintf("%d/%x ", l.Window(k), l.DropoutSeed(k)&0xffff)
	}
	return s
}

// TestLaneDependsOnEachKey: a lane is a function of (run, seed, dataset
// size, epoch, peer) and changes with each of them.
func TestLaneDependsOnEachKey(t *testing.T) {
	lane := func(run string, seed uint64, windows int64, epoch uint64, peer string) string {
		return laneText(mustOrder(t, run, seed, windows).Lane(epoch, peer))
	}
	base := lane("run", 1, 10000, 3, "peer-a")
	if again := lane("run", 1, 10000, 3, "peer-a"); again != base {
		t.Fatalf("same key, different lanes: %s vs %s", base, again)
	}
	for name, other := range map[string]string{
		"run": lane("other", 1, 10000, 3, "peer-a"), "seed": lane("run", 2, 10000, 3, "peer-a"),
		"dataset size": lane("run", 1, 10001, 3, "peer-a"), "epoch": lane("run", 1, 10000, 4, "peer-a"),
		"peer": lane("run", 1, 10000, 3, "peer-b"),
		// Fields are length-prefixed: moving bytes from the run to the
		// peer id is another key.
		"run/peer split": lane("ru", 1, 10000, 3, "npeer-a"),
	} {
		if other == base {
			t.Errorf("changing the %s kept the lane %s", name, base)
		}
	}
	// Pinned: lanes are part of the protocol (validators recompute them),
	// so an accidental change must fail here. Bump "dtrain/lane/v1" on
	// purpose.
	if want := "685/5087 9044/ad69 5975/5cb7 6508/c0f6 47/fb5d 2467/cad5 "; base != want {
		t.Errorf("lane of (run, 1, 10000 windows, epoch 3, peer-a) = %q, pinned %q", base, want)
	}
}

// TestLaneCoversTheDataOnce: a lane's first W samples are every window
// once, then it wraps; micro-batch k is samples k·size … k·size+size−1.
func TestLaneCoversTheDataOnce(t *testing.T) {
	for _, w := range []int64{1, 2, 7, 1000, 4097} {
		l := mustOrder(t, "run", 5, w).Lane(2, "peer")
		seen := make([]bool, w)
		for k := int64(0); k < w; k++ {
			x := l.Window(k)
			if x < 0 || x >= w || seen[x] {
				t.Fatalf("%d windows: sample %d is window %d (outside or repeated)", w, k, x)
			}
			seen[x] = true
			if again := l.Window(k + w); again != x {
				t.Fatalf("%d windows: sample %d is window %d, sample %d is %d, want it to wrap", w, k, x, k+w, again)
			}
		}
		const size = 3
		for k := int64(0); k < 5; k++ {
			mb, err := l.MicroBatch(size, k)
			if err != nil {
				t.Fatal(err)
			}
			for j, x := range mb {
				if want := l.Window(k*size + int64(j)); x != want {
					t.Fatalf("%d windows: micro-batch %d holds window %d at %d, sample %d is %d", w, k, x, j, k*size+int64(j), want)
				}
			}
		}
	}
	l := mustOrder(t, "run", 5, 100).Lane(0, "peer")
	for _, c := range []struct {
		size int
		k    int64
	}{{0, 0}, {-1, 0}, {4, -1}, {4, math.MaxInt64 / 4}, {1, math.MaxInt64}} {
		if _, err := l.MicroBatch(c.size, c.k); err == nil {
			t.Errorf("micro-batch %d of %d samples: no error", c.k, c.size)
		}
	}
}

// TestLaneDropoutSeedsDiffer: no two micro-batches of a lane, and no two
// peers' same micro-batch, share a dropout seed.
func TestLaneDropoutSeedsDiffer(t *testing.T) {
	o := mustOrder(t, "run", 9, 5000)
	seen := map[uint64]string{}
	for p := range 50 {
		l := o.Lane(1, fmt.Sprintf("peer-%d", p))
		for k := int64(0); k < 200; k++ {
			s := l.DropoutSeed(k)
			at := fmt.Sprintf("peer-%d micro-batch %d", p, k)
			if prev, ok := seen[s]; ok {
				t.Fatalf("%s and %s share the dropout seed %x", prev, at, s)
			}
			seen[s] = at
		}
	}
}

// TestLaneOverlapMatchesTheDocumentedFigures: lanes start independently
// and uniformly, so two lanes of n samples share n²/W windows on average,
// and P of them cover W·(1−(1−n/W)^P) windows (Lane's doc comment). The
// lanes are fixed by their keys, so this is deterministic; the bounds are
// 4 standard errors of the measured means (from the samples' own spread),
// which a mistake in the start's distribution (e.g. lanes that cluster or
// depend on each other) would exceed.
func TestLaneOverlapMatchesTheDocumentedFigures(t *testing.T) {
	const w, n = 10007, 500
	o := mustOrder(t, "overlap", 3, w)
	lanes := func(epoch uint64, peers int) [][]bool {
		out := make([][]bool, peers)
		for p := range out {
			l := o.Lane(epoch, fmt.Sprintf("peer-%d", p))
			out[p] = make([]bool, w)
			for k := int64(0); k < n; k++ {
				out[p][l.Window(k)] = true
			}
		}
		return out
	}

	// Pairwise overlaps of 200 peers' lanes: the overlaps of two pairs are
	// uncorrelated even when they share a peer (each is n²/W in expectation
	// whatever that peer's start), so the mean's standard error is sd/√pairs.
	ls := lanes(0, 200)
	var overlaps []float64
	for a := range ls {
		for b := a + 1; b < len(ls); b++ {
			c := 0
			for x := range ls[a] {
				if ls[a][x] && ls[b][x] {
					c++
				}
			}
			overlaps = append(overlaps, float64(c))
		}
	}
	want := float64(n*n) / w
	mean, se := meanAndError(overlaps)
	t.Logf("mean overlap of two lanes of %d of %d windows: %.2f ± %.2f, expected n²/W = %.2f", n, w, mean, se, want)
	if math.Abs(mean-want) > 4*se {
		t.Errorf("mean pairwise overlap %.2f, want %.2f ± %.2f", mean, want, 4*se)
	}

	// Windows covered by 20 peers, over 100 epochs (independent trials).
	const peers = 20
	var covered []float64
	for e := range uint64(100) {
		all := make([]bool, w)
		for _, l := range lanes(e+1, peers) {
			for x, in := range l {
				all[x] = all[x] || in
			}
		}
		c := 0
		for _, in := range all {
			if in {
				c++
			}
		}
		covered = append(covered, float64(c))
	}
	want = w * (1 - math.Pow(1-float64(n)/w, peers))
	mean, se = meanAndError(covered)
	t.Logf("%d lanes of %d of %d windows cover %.1f ± %.1f, expected W·(1−(1−n/W)^P) = %.1f", peers, n, w, mean, se, want)
	if math.Abs(mean-want) > 4*se {
		t.Errorf("mean coverage %.1f, want %.1f ± %.1f", mean, want, 4*se)
	}
}

// meanAndError returns the mean of xs and its standard error.
func meanAndError(xs []float64) (mean, se float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)-1) / float64(len(xs)))
}
