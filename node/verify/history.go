package verify

import (
	"cmp"
	"math"
	"slices"
)

// history is what a Verifier remembers between epochs: each miner's
// recent lane statistics, the lane statistics of every tested update of
// the last LaneEpochs audited epochs (the lane test's power), and
// sketches of the updates it audited and of the averages of the last
// HistoryEpochs epochs. Its size is bounded by MaxMiners lane records of
// LaneEpochs values, by LaneEpochs epochs of audits' statistics, and by
// the sketches of HistoryEpochs epochs of audits (SketchDim float64s
// each).
type history struct {
	cfg     Config
	lanes   map[string]*laneRecord
	tested  []epochTested // by epoch, the last LaneEpochs audited
	clock   uint64        // audits so far, to find the least recently audited miner
	recent  []pastVector
	highest uint64 // the highest epoch audited
}

type laneRecord struct {
	last  uint64 // the clock of the miner's latest audit
	stats []epochStats
}

type epochStats struct {
	epoch uint64
	s     LaneStats
}

// epochTested is the lane statistics of an epoch's tested updates.
type epochTested struct {
	epoch uint64
	s     []LaneStats
}

// pastVector is a sketch of an earlier epoch's update of a miner, or of
// an epoch's average (miner "").
type pastVector struct {
	epoch uint64
	miner string
	s     sketch
}

func newHistory(cfg Config) *history {
	return &history{cfg: cfg, lanes: map[string]*laneRecord{}}
}

// replays returns the largest cosine of s with a sketch kept from an epoch
// before e, and the epoch of one above ReplayCos, or -1.
func (h *history) replays(e uint64, s sketch) (float64, int64) {
	best, at := math.Inf(-1), int64(-1)
	for _, p := range h.recent {
		if p.epoch >= e {
			continue
		}
		c := s.cos(p.s)
		best = max(best, c)
		if c > h.cfg.ReplayCos && at < 0 {
			at = int64(p.epoch)
		}
	}
	return best, at
}

// remember keeps the sketches of epoch e's updates and of the average of
// epoch e−1, replacing anything kept for e by an earlier audit of it.
func (h *history) remember(e uint64, miners []string, sketches []sketch, prevMean sketch) {
	h.recent = slices.DeleteFunc(h.recent, func(p pastVector) bool {
		return p.epoch == e || p.epoch+uint64(h.cfg.HistoryEpochs) <= max(e, h.highest)
	})
	h.highest = max(h.highest, e)
	for i, s := range sketches {
		if s != nil {
			h.recent = append(h.recent, pastVector{e, miners[i], s})
		}
	}
	if prevMean != nil && e > 0 && !slices.ContainsFunc(h.recent, func(p pastVector) bool { return p.epoch == e-1 && p.miner == "" }) {
		h.recent = append(h.recent, pastVector{e - 1, "", prevMean})
	}
}

// lane records miner's lane statistics of epoch e and returns their means
// over its last LaneEpochs audits and whether it has that many.
func (h *history) lane(miner string, e uint64, st LaneStats) (LaneStats, bool) {
	h.clock++
	r := h.lanes[miner]
	if r == nil {
		if len(h.lanes) >= h.cfg.MaxMiners {
			h.evict()
		}
		r = &laneRecord{}
		h.lanes[miner] = r
	}
	r.last = h.clock
	r.stats = slices.DeleteFunc(r.stats, func(v epochStats) bool { return v.epoch == e })
	r.stats = append(r.stats, epochStats{e, st})
	slices.SortFunc(r.stats, func(a, b epochStats) int { return cmp.Compare(a.epoch, b.epoch) })
	if len(r.stats) > h.cfg.LaneEpochs {
		r.stats = r.stats[len(r.stats)-h.cfg.LaneEpochs:]
	}
	var m LaneStats
	for _, v := range r.stats {
		m.All += v.s.All
		m.Head += v.s.Head
		m.Tail += v.s.Tail
	}
	k := float64(len(r.stats))
	return LaneStats{m.All / k, m.Head / k, m.Tail / k}, len(r.stats) == h.cfg.LaneEpochs
}

// power records the lane statistics of epoch e's tested updates
// (replacing those of an earlier audit of e) and returns the median of
// each statistic over the tested updates of the last LaneEpochs epochs
// audited, NaN where there are none.
func (h *history) power(e uint64, st []LaneStats) LaneStats {
	h.tested = slices.DeleteFunc(h.tested, func(t epochTested) bool { return t.epoch == e })
	h.tested = append(h.tested, epochTested{e, st})
	slices.SortFunc(h.tested, func(a, b epochTested) int { return cmp.Compare(a.epoch, b.epoch) })
	if len(h.tested) > h.cfg.LaneEpochs {
		h.tested = h.tested[len(h.tested)-h.cfg.LaneEpochs:]
	}
	var all, head, tail []float64
	for _, t := range h.tested {
		for _, s := range t.s {
			all, head, tail = append(all, s.All), append(head, s.Head), append(tail, s.Tail)
		}
	}
	return LaneStats{median(all), median(head), median(tail)}
}

// evict forgets the least recently audited miner.
func (h *history) evict() {
	var oldest string
	var at uint64
	for id, r := range h.lanes {
		if oldest == "" || r.last < at || r.last == at && id < oldest {
			oldest, at = id, r.last
		}
	}
	delete(h.lanes, oldest)
}
