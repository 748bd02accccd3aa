package verify

import (
	"errors"
	"fmt"
	"math"
)

// Config sets a Verifier's sample sizes and thresholds. Start from
// DefaultConfig. The thresholds of the lane test are in units of its t
// statistic; what an honest miner scores depends on the model, the data
// and the sample sizes, so a run should check them against its own honest
// miners (the simulation in this package's tests shows how).
type Config struct {
	// Seed keys this validator's private choices: which of a miner's
	// windows it evaluates, and the sketches of updates it keeps. Miners
	// commit to their update before they could learn them.
	Seed uint64

	// HeadWindows and TailWindows are the windows evaluated in the first
	// and the second half of a miner's claimed samples (more in the second:
	// it is where a claim of samples never trained shows, and an honest
	// miner fits its recent windows best); RefWindows the reference
	// windows. An audit evaluates every one of them twice. WithWindows
	// sets all three from one count.
	HeadWindows, TailWindows, RefWindows int

	// The lane test's decisions (see LaneStats). A miner is caught when,
	// in one audit, its All or Tail statistic is below LaneFloor; or when
	// the mean of All, Head or Tail over its last LaneEpochs audits is
	// below AllMean, HeadMean or TailMean. An audit passes when neither
	// happened and both All and Tail reach LanePass; otherwise it is
	// Inconclusive.
	LaneFloor, AllMean, HeadMean, TailMean, LanePass float64
	LaneEpochs                                       int
	// PowerZ: each of those thresholds catches only when the median of
	// its statistic over the tested updates of the last LaneEpochs
	// audited epochs clears it by PowerZ times the t noise of what is
	// compared (1 for one audit's statistic, 1/√LaneEpochs for a mean of
	// them). Below, the lane test cannot tell honest miners from others
	// there in this run at these sample sizes (a small learning rate, a
	// large batch, few windows, data with little to fit), and catches no
	// one by it.
	PowerZ float64

	// BoundSlack is how far past AdamW's bound a coordinate may go before
	// the update is refused: room for float32 rounding and for the
	// all-reduce's lossy codecs (int8 blockwise moves a value by at most
	// half a step of 1/127 of its block's largest, 0.4%; bf16 by 0.4%)
	// and the error feedback they carry from the previous epoch.
	BoundSlack float64
	// CopyCos: two updates of an epoch, or an update and the previous
	// average, whose cosine is above this are the same vector.
	// ReplayCos: an update whose sketch's cosine with the sketch of an
	// earlier epoch's update or average is above this replays it (sketch
	// cosines are off by about 1/√SketchDim).
	CopyCos, ReplayCos float64
	// Uncorrelated: an update whose cosine with the mean of the others is
	// below this fraction of the epoch's median such cosine is unrelated
	// to the training the others did. That comparison runs only against a
	// mean of UncorrelatedMinPeers other updates or more: the mean of two
	// or three others carries their own parts as much as the epoch's
	// direction (in node/validator's test of three honest miners, one
	// honest update of epoch 0 had a cosine of −0.09 with the mean of the
	// other two, whose median was 0.25). Against fewer, an update is
	// unrelated only when its cosine is what a random direction's would
	// be, |cos|·√n under RandomZ (n the parameters; a random direction's
	// cosine with a given vector is about N(0, 1/n)).
	Uncorrelated         float64
	UncorrelatedMinPeers int
	RandomZ              float64
	// StaleMargin: an update whose coordinate along the previous average
	// exceeds its coordinate along this epoch's mean by more than this
	// was trained from the previous epoch's parameters. It is checked
	// only for claims of at least StaleMinSteps inner steps: AdamW's first
	// moment carries about 1/(1−β1) steps of the previous epoch's
	// gradients into the next, so the first few steps of an honest epoch
	// do point along the previous average.
	StaleMargin   float64
	StaleMinSteps int
	// StaleMinPeers: the stale check runs only when the mean it compares
	// with holds at least this many other updates. The mean of two or
	// three others carries their own parts as much as the epoch's common
	// direction, and lies less along it than the previous average of a
	// whole swarm does: in node/validator's test of three honest miners
	// in-process, every honest update of epoch 1 had Prev − Now ≥ 0.2.
	StaleMinPeers int

	// SketchDim is the size of the count sketches kept of past updates;
	// HistoryEpochs how many epochs of them are kept; MaxMiners how many
	// miners' lane statistics and sketches (the least recently audited
	// are forgotten first).
	SketchDim, HistoryEpochs, MaxMiners int
}

// DefaultConfig returns the settings the simulation in this package's
// tests was run with.
func DefaultConfig() Config {
	return Config{
		HeadWindows: 12, TailWindows: 20, RefWindows: 32,
		LaneFloor: -1, AllMean: 1.5, HeadMean: 0, TailMean: 2, LanePass: 2, LaneEpochs: 3,
		PowerZ:     2,
		BoundSlack: 1.05,
		CopyCos:    0.99999, ReplayCos: 0.99999,
		Uncorrelated: 0.25, UncorrelatedMinPeers: 4, RandomZ: 5,
		StaleMargin: 0.1, StaleMinSteps: 20, StaleMinPeers: 4,
		SketchDim: 1024, HistoryEpochs: 4, MaxMiners: 4096,
	}
}

// MinWindows is the fewest miner windows WithWindows accepts: two in
// each half, as Welch's t needs.
const MinWindows = 6

// WithWindows returns c evaluating n of a miner's windows per audit, 3/8
// of them in the head and the rest in the tail (DefaultConfig's split of
// 32), against n reference windows. The lane test's statistics of an
// honest miner grow about as √n (each half's windows are at most the
// samples it holds); a cheater's stay about N(0, 1).
func (c Config) WithWindows(n int) Config {
	c.HeadWindows = max(2, 3*n/8)
	c.TailWindows = max(2, n-c.HeadWindows)
	c.RefWindows = max(2, n)
	return c
}

// Validate reports the first impossible setting.
func (c Config) Validate() error {
	bad := func(name string, v any) error { return fmt.Errorf("verify config: %s = %v", name, v) }
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch {
	case c.HeadWindows < 2 || c.TailWindows < 2:
		return bad("HeadWindows and TailWindows", [2]int{c.HeadWindows, c.TailWindows})
	case c.RefWindows < 2:
		return bad("RefWindows", c.RefWindows)
	case !finite(c.LaneFloor) || !finite(c.AllMean) || !finite(c.HeadMean) || !finite(c.TailMean) || !finite(c.LanePass) || !finite(c.PowerZ):
		return errors.New("verify config: lane thresholds must be finite")
	case c.PowerZ < 0:
		return bad("PowerZ", c.PowerZ)
	case c.LaneEpochs < 1:
		return bad("LaneEpochs", c.LaneEpochs)
	case !(c.BoundSlack >= 1) || !finite(c.BoundSlack):
		return bad("BoundSlack", c.BoundSlack)
	case !(c.CopyCos > 0 && c.CopyCos < 1):
		return bad("CopyCos", c.CopyCos)
	case !(c.ReplayCos > 0 && c.ReplayCos < 1):
		return bad("ReplayCos", c.ReplayCos)
	case !(c.Uncorrelated >= 0 && c.Uncorrelated < 1):
		return bad("Uncorrelated", c.Uncorrelated)
	case c.UncorrelatedMinPeers < 2 || !(c.RandomZ >= 0) || !finite(c.RandomZ):
		return bad("UncorrelatedMinPeers and RandomZ", [2]any{c.UncorrelatedMinPeers, c.RandomZ})
	case !finite(c.StaleMargin) || c.StaleMinSteps < 0 || c.StaleMinPeers < 0:
		return bad("StaleMargin", c.StaleMargin)
	case c.SketchDim < 16:
		return bad("SketchDim", c.SketchDim)
	case c.HistoryEpochs < 1:
		return bad("HistoryEpochs", c.HistoryEpochs)
	case c.MaxMiners < 1:
		return bad("MaxMiners", c.MaxMiners)
	}
	return nil
}
