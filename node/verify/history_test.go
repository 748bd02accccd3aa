package verify

import (
	"fmt"
	"math"
	"testing"
)

func TestHistoryReplays(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HistoryEpochs = 2
	h := newHistory(cfg)
	r := srng(5)
	vec := func() sketch {
		v := make([]float32, 5000)
		for j := range v {
			v[j] = float32(r.norm())
		}
		return newSketch(v, cfg.SketchDim, 1)
	}
	a, b, avg := vec(), vec(), vec()
	h.remember(3, []string{"a", "b"}, []sketch{a, b}, avg) // avg is epoch 2's average
	at := func(e uint64, s sketch) int64 {
		_, at := h.replays(e, s)
		return at
	}
	switch {
	case at(3, a) != -1:
		t.Error("an update of epoch 3 replays itself in epoch 3")
	case at(4, a) != 3 || at(4, b) != 3:
		t.Error("epoch 3's updates not found in epoch 4")
	case at(4, avg) != 2:
		t.Error("epoch 2's average not found")
	case at(4, vec()) != -1:
		t.Error("an unrelated update replays something")
	}
	if c, _ := h.replays(4, vec()); c > 5/math.Sqrt(float64(cfg.SketchDim)) {
		t.Errorf("an unrelated update's largest cosine is %v", c)
	}
	// Auditing epoch 3 again replaces what was kept of it.
	c := vec()
	h.remember(3, []string{"a"}, []sketch{c}, avg)
	if at(4, b) != -1 || at(4, c) != 3 {
		t.Error("a second audit of epoch 3 did not replace the first")
	}
	// Two epochs later, epoch 3 is forgotten.
	h.remember(5, nil, nil, nil)
	if at(6, c) != -1 {
		t.Error("epoch 3 still kept at epoch 5 with HistoryEpochs 2")
	}
}

func TestHistoryLaneWindow(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LaneEpochs, cfg.MaxMiners = 3, 2
	h := newHistory(cfg)
	st := func(x float64) LaneStats { return LaneStats{x, x + 1, x + 2} }
	if _, full := h.lane("a", 1, st(1)); full {
		t.Error("full after one audit")
	}
	h.lane("a", 2, st(2))
	m, full := h.lane("a", 4, st(6))
	if !full || m != st(3) {
		t.Errorf("mean %+v full %v, want %+v", m, full, st(3))
	}
	// A fourth audit drops the oldest; auditing an epoch again replaces it.
	if m, _ = h.lane("a", 5, st(10)); m != st(6) {
		t.Errorf("mean %+v, want %+v", m, st(6))
	}
	if m, _ = h.lane("a", 5, st(1)); m != st(3) {
		t.Errorf("after re-auditing epoch 5: mean %+v, want %+v", m, st(3))
	}
	// At MaxMiners, the least recently audited miner is forgotten.
	h.lane("b", 5, st(0))
	h.lane("a", 6, st(0))
	h.lane("c", 6, st(0))
	if _, ok := h.lanes["b"]; ok || len(h.lanes) != 2 {
		t.Errorf("miners held: %v, want a and c", h.lanes)
	}
}

func TestHistoryBoundedByMaxMiners(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxMiners = 50
	h := newHistory(cfg)
	for i := range 1000 {
		h.lane(fmt.Sprint("m", i), uint64(i), LaneStats{1, 1, 1})
	}
	if len(h.lanes) != 50 {
		t.Errorf("%d miners held, want 50", len(h.lanes))
	}
	if m, _ := h.lane("m999", 1000, LaneStats{3, 3, 3}); math.Abs(m.All-2) > 1e-12 {
		t.Errorf("the latest miner's window was lost: mean %+v", m)
	}
}
