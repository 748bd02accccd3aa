package score

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// Config sets a Scorer's thresholds and bounds. Start from DefaultConfig:
// the zero Config is not valid, because zero is a meaningful value for
// several fields (NetworkShare, WorkFloor, LateCredit, NewMinerWork).
type Config struct {
	// MinBandwidth and TargetBandwidth (bytes/s) shape the bandwidth
	// component: 0 at or below MinBandwidth, 1 at or above TargetBandwidth,
	// logarithmic between, so that each doubling counts the same and
	// nothing above the target earns more.
	MinBandwidth, TargetBandwidth float64
	// GoodRTT and MaxRTT shape the latency component: 1 at or below
	// GoodRTT, 0 at or above MaxRTT, logarithmic between.
	GoodRTT, MaxRTT time.Duration
	// MaxStaleness is how many epochs behind the swarm make the sync
	// component 0; it falls linearly from 1 at 0 epochs behind.
	MaxStaleness uint64

	// Alpha is the weight of a new epoch's sample in the work, delivery
	// and sync moving averages (Subnet 38 uses 0.6).
	Alpha float64
	// ProbeWindow is how many epochs of probes the bandwidth and latency
	// medians span.
	ProbeWindow int
	// QualityWindow is how many recent positive work qualities, of all
	// miners, the median that work is measured against spans.
	QualityWindow int

	// NetworkShare is the largest part of a score the network can take
	// away: a score is multiplied by 1 − NetworkShare + NetworkShare·N,
	// N the network component in [0, 1].
	NetworkShare float64
	// BandwidthWeight, LatencyWeight and SyncWeight weigh the three parts
	// of the network component.
	BandwidthWeight, LatencyWeight, SyncWeight float64
	// WorkFloor is the work sample of a verified miner whose update
	// improved nothing; a verified miner at or above the median quality
	// samples 1.
	WorkFloor float64
	// NewMinerWork is the work component of a miner with no verdict yet.
	NewMinerWork float64
	// LateCredit is what a late delivery counts, against 1 on time and 0
	// missed.
	LateCredit float64
	// RecoveryEpochs is how many epochs with a passed check bring a caught
	// cheater's gate back to 1 after its first strike; each further strike
	// doubles it.
	RecoveryEpochs int

	// AliveExpiry: a miner not seen alive (a Seen, a probe answered, a
	// delivery) in this many epochs gets weight 0.
	AliveExpiry uint64
	// RoundExpiry: a miner not observed in any round in this many epochs
	// gets weight 0; groups rotate, so this must span the epochs it takes
	// a validator to share a group with every miner.
	RoundExpiry uint64
	// EvictAfter: a miner not seen alive in this many epochs is forgotten.
	EvictAfter uint64
	// MaxMiners bounds the miners held; see Scorer for what happens at the
	// bound.
	MaxMiners int
	// MaxSamples bounds the probe and rate samples of one miner in one
	// epoch; more are refused.
	MaxSamples int
	// MaxAhead is how many epochs past the first open one observations may
	// be for.
	MaxAhead uint64

	// UIDs maps miner ids to chain uids for ChainWeights. Nil: a miner's
	// uid is its index in the epoch's sorted vector, which is only stable
	// while the set of miners is (see ChainWeights).
	UIDs map[string]uint16
	// Version gives ChainWeights.VersionKey.
	Version Version
}

// Version is a validator software version, as Bittensor's version_key
// encodes it.
type Version struct {
	Major, Minor, Patch uint64
}

// Key is 1000·major + 10·minor + patch, the version_key Subnet 38's
// validators send with set_weights. Minor < 100 and Patch < 10 keep it
// unique (Config.Validate checks).
func (v Version) Key() uint64 { return 1000*v.Major + 10*v.Minor + v.Patch }

// MaxMinerID is the longest miner id accepted, in bytes; a libp2p peer id
// in base58 is about 52.
const MaxMinerID = 128

// DefaultConfig returns the defaults. The bandwidth and latency thresholds
// suit GPT-2-small averaging (a 0.5 GB pseudo-gradient moves in about 40 s
// at the 200 Mbit/s target); a run should set them from its model size and
// epoch length.
func DefaultConfig() Config {
	return Config{
		MinBandwidth:    10e6 / 8,
		TargetBandwidth: 200e6 / 8,
		GoodRTT:         20 * time.Millisecond,
		MaxRTT:          500 * time.Millisecond,
		MaxStaleness:    4,
		Alpha:           0.3,
		ProbeWindow:     5,
		QualityWindow:   256,
		NetworkShare:    0.5,
		BandwidthWeight: 0.5,
		LatencyWeight:   0.25,
		SyncWeight:      0.25,
		WorkFloor:       0.5,
		NewMinerWork:    0.5,
		LateCredit:      0.5,
		RecoveryEpochs:  20,
		AliveExpiry:     3,
		RoundExpiry:     20,
		EvictAfter:      200,
		MaxMiners:       4096,
		MaxSamples:      16,
		MaxAhead:        2,
		Version:         Version{Major: 0, Minor: 1, Patch: 0},
	}
}

// Limits on the bounds themselves, so that a config cannot ask for
// unbounded memory either.
const (
	maxMinersLimit    = 1 << 20
	maxSamplesLimit   = 1024
	maxWindowLimit    = 64
	maxQualityLimit   = 1 << 16
	maxAheadLimit     = 64
	maxBandwidthLimit = 1e12 // bytes/s; also the largest accepted sample
	maxRTTLimit       = 10 * time.Minute
	maxEpochsLimit    = 1 << 32 // keeps epoch sums from overflowing
)

// ErrBadConfig marks an invalid Config.
var ErrBadConfig = errors.New("score: bad config")

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	return nil
}

func (c Config) validate() error {
	if err := c.validateShapes(); err != nil {
		return err
	}
	if err := c.validateMix(); err != nil {
		return err
	}
	if err := c.validateBounds(); err != nil {
		return err
	}
	return c.validateChain()
}

func (c Config) validateShapes() error {
	switch {
	case !finite(c.MinBandwidth) || c.MinBandwidth <= 0:
		return fmt.Errorf("min bandwidth %v bytes/s, want > 0", c.MinBandwidth)
	case !finite(c.TargetBandwidth) || c.TargetBandwidth <= c.MinBandwidth || c.TargetBandwidth > maxBandwidthLimit:
		return fmt.Errorf("target bandwidth %v bytes/s, want above min bandwidth %v and at most %v", c.TargetBandwidth, c.MinBandwidth, maxBandwidthLimit)
	case c.GoodRTT <= 0:
		return fmt.Errorf("good rtt %v, want > 0", c.GoodRTT)
	case c.MaxRTT <= c.GoodRTT || c.MaxRTT > maxRTTLimit:
		return fmt.Errorf("max rtt %v, want above good rtt %v and at most %v", c.MaxRTT, c.GoodRTT, maxRTTLimit)
	case c.MaxStaleness < 1 || c.MaxStaleness > maxEpochsLimit:
		return fmt.Errorf("max staleness %d epochs, want 1..%d", c.MaxStaleness, uint64(maxEpochsLimit))
	case !finite(c.Alpha) || c.Alpha <= 0 || c.Alpha > 1:
		return fmt.Errorf("alpha %v, want in (0, 1]", c.Alpha)
	case c.ProbeWindow < 1 || c.ProbeWindow > maxWindowLimit:
		return fmt.Errorf("probe window %d, want 1..%d", c.ProbeWindow, maxWindowLimit)
	case c.QualityWindow < 1 || c.QualityWindow > maxQualityLimit:
		return fmt.Errorf("quality window %d, want 1..%d", c.QualityWindow, maxQualityLimit)
	}
	return nil
}

func (c Config) validateMix() error {
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"network share", c.NetworkShare}, {"work floor", c.WorkFloor},
		{"new miner work", c.NewMinerWork}, {"late credit", c.LateCredit},
		{"bandwidth weight", c.BandwidthWeight}, {"latency weight", c.LatencyWeight},
		{"sync weight", c.SyncWeight},
	} {
		if !finite(f.v) || f.v < 0 || f.v > 1 {
			return fmt.Errorf("%s %v, want in [0, 1]", f.name, f.v)
		}
	}
	if c.BandwidthWeight+c.LatencyWeight+c.SyncWeight == 0 {
		return errors.New("bandwidth, latency and sync weights are all 0")
	}
	if c.RecoveryEpochs < 1 || c.RecoveryEpochs > 1<<16 {
		return fmt.Errorf("recovery epochs %d, want 1..%d", c.RecoveryEpochs, 1<<16)
	}
	return nil
}

func (c Config) validateBounds() error {
	switch {
	case c.AliveExpiry < 1 || c.AliveExpiry > maxEpochsLimit:
		return fmt.Errorf("alive expiry %d epochs, want 1..%d", c.AliveExpiry, uint64(maxEpochsLimit))
	case c.RoundExpiry < 1 || c.RoundExpiry > maxEpochsLimit:
		return fmt.Errorf("round expiry %d epochs, want 1..%d", c.RoundExpiry, uint64(maxEpochsLimit))
	case c.EvictAfter < c.AliveExpiry || c.EvictAfter < c.RoundExpiry || c.EvictAfter > maxEpochsLimit:
		return fmt.Errorf("evict after %d epochs, want at least alive expiry %d and round expiry %d, at most %d", c.EvictAfter, c.AliveExpiry, c.RoundExpiry, uint64(maxEpochsLimit))
	case c.MaxMiners < 1 || c.MaxMiners > maxMinersLimit:
		return fmt.Errorf("max miners %d, want 1..%d", c.MaxMiners, maxMinersLimit)
	case c.MaxSamples < 1 || c.MaxSamples > maxSamplesLimit:
		return fmt.Errorf("max samples %d, want 1..%d", c.MaxSamples, maxSamplesLimit)
	case c.MaxAhead > maxAheadLimit:
		return fmt.Errorf("max ahead %d epochs, want at most %d", c.MaxAhead, maxAheadLimit)
	}
	return nil
}

func (c Config) validateChain() error {
	if c.Version.Minor >= 100 || c.Version.Patch >= 10 || c.Version.Major > math.MaxUint64/1000-1 {
		return fmt.Errorf("version %d.%d.%d, want minor < 100 and patch < 10 so that the key is unique", c.Version.Major, c.Version.Minor, c.Version.Patch)
	}
	if len(c.UIDs) > c.MaxMiners {
		return fmt.Errorf("%d uids, more than max miners %d", len(c.UIDs), c.MaxMiners)
	}
	owner := make(map[uint16]string, len(c.UIDs))
	for id, uid := range c.UIDs {
		if err := checkMinerID(id); err != nil {
			return fmt.Errorf("uids: %w", err)
		}
		if other, ok := owner[uid]; ok {
			a, b := min(id, other), max(id, other) // the same message whatever the map order
			return fmt.Errorf("uids: %q and %q both map to uid %d", a, b, uid)
		}
		owner[uid] = id
	}
	return nil
}

// checkMinerID accepts 1..MaxMinerID bytes of UTF-8 without control
// characters, so that ids print and encode as JSON unchanged.
func checkMinerID(id string) error {
	if id == "" || len(id) > MaxMinerID {
		return fmt.Errorf("miner id of %d bytes, want 1..%d", len(id), MaxMinerID)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("miner id %q is not UTF-8", id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("miner id %q has a control character", id)
		}
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
