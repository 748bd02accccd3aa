package verify

import (
	"errors"
	"fmt"
	"math"

	"github.com/dtrain-dev/dtrain/node/score"
	"github.com/dtrain-dev/dtrain/torch"
)

// Epoch is what a validator knows of one diloco epoch, the same for every
// miner it audits in it.
type Epoch struct {
	Number uint64
	// Start is θ, the parameters the epoch's local training started from
	// (the swarm's state after the previous outer step).
	Start []float32
	// PrevMean is the averaged pseudo-gradient of the epoch before, the
	// one that moved the swarm to Start; nil in the first epoch or when
	// the validator does not hold it (the stale and echo checks then
	// cannot run).
	PrevMean []float32
	// LR is the learning rate of each inner step of the epoch, in order
	// (the run's schedule at the epoch's first steps). A miner cannot have
	// taken more steps than LR has.
	LR []float64
	// AdamW is the miners' inner optimizer (betas, weight decay).
	AdamW torch.AdamWConfig
	// MicroBatch is the samples per micro-batch and Accum the micro-batches
	// per inner step: a miner that claims n samples claims
	// ⌈n/(MicroBatch·Accum)⌉ inner steps.
	MicroBatch, Accum int
	// Reference returns micro-batch k of windows that no miner was
	// assigned in this epoch (a lane of an id only this validator knows,
	// drawn afresh each epoch), the data an update is compared on.
	Reference func(k int) (torch.Batch, error)
}

// Update is one audited miner's contribution to an epoch's average.
type Update struct {
	Miner string
	// Vector is the pseudo-gradient θ_start − θ_local the miner put into
	// the average: the decoded contribution its commitment was checked
	// against (see the package documentation), not a copy it sent aside.
	Vector []float32
	// Samples is the sample count the miner claimed, its weight in the
	// average.
	Samples int64
	// Batches returns the miner's micro-batch k of the epoch, recomputed
	// from its public data assignment (node/data's lane of the miner's id).
	Batches func(k int) (torch.Batch, error)
}

// Outcome is the audit of one miner in one epoch: the verdict for the
// scorer and the measurements it rests on, for logs.
type Outcome struct {
	Verdict  score.Verdict
	Evidence Evidence
	// Err says why the lane test could not run (the miner's batches could
	// not be recomputed); the verdict is then Inconclusive.
	Err error
}

// Evidence holds an audit's measurements. Fields a check did not reach
// are NaN.
type Evidence struct {
	Norm float64 // ‖Δ‖₂
	// Bound is max_j |Δ_j| / (AdamW's largest possible |Δ_j| for the
	// claimed steps): above 1, no AdamW run with the epoch's learning
	// rates produces Δ.
	Bound float64
	// PeerCos is the cosine of Δ with the mean of the other updates that
	// passed the vector checks; PrevCos with the previous average.
	PeerCos, PrevCos float64
	// Now and Prev are Δ's coordinates on the unit vectors of that mean
	// and of the previous average (least squares): a stale update lies
	// along the previous average rather than along this epoch's updates.
	Now, Prev float64
	// Closest is the largest sketch cosine of Δ with another update of the
	// epoch, and Copy the miner whose update Δ nearly equals, if any.
	Closest float64
	Copy    string
	// PastCos is the largest sketch cosine of Δ with the kept updates and
	// averages of earlier epochs, and Replay the epoch of one Δ nearly
	// equals, or -1.
	PastCos float64
	Replay  int64
	// Lane holds the lane test's statistics (t values) of this audit;
	// LaneMean their means over this miner's last LaneEpochs audits (NaN
	// until it has that many).
	Lane, LaneMean LaneStats
	// Power holds the medians of the lane statistics over the tested
	// updates of the last LaneEpochs audited epochs, this one's included:
	// a threshold of the lane test catches only where the median of its
	// statistic clears it by PowerZ noise widths (NaN when no update was
	// tested).
	Power LaneStats
	// Gain is the relative loss improvement on the reference windows when
	// Δ is applied: (L(θ) − L(θ−Δ)) / L(θ) (Templar's gradient score).
	Gain float64
	// Cost is the evaluation work this audit took (not counting what all
	// the epoch's audits share).
	Cost Cost
}

// LaneStats are the lane test's statistics of one update: Welch's t of
// how much more the update lowers the loss of the miner's own windows than
// of the reference windows, over all the tested windows (All), the first
// half of them (Head) and the second (Tail). Under a miner that did not
// train on its lane each is about N(0, 1).
type LaneStats struct {
	All, Head, Tail float64
}

// Cost counts forward passes of the validator's model.
type Cost struct {
	Forwards int   // forward passes, without backward
	Tokens   int64 // tokens through them
}

// Add returns the sum of two costs.
func (c Cost) Add(d Cost) Cost { return Cost{c.Forwards + d.Forwards, c.Tokens + d.Tokens} }

// Reasons a Cheat verdict gives, each at most score.MaxReason bytes.
const (
	ReasonInvalid      = "invalid vector"
	ReasonSamples      = "impossible sample count"
	ReasonZero         = "zero update"
	ReasonBound        = "exceeds the AdamW step bound"
	ReasonEcho         = "echoes the last average"
	ReasonReplay       = "replays an earlier update"
	ReasonUncorrelated = "uncorrelated with the other updates"
	ReasonStale        = "trained from stale parameters"
	ReasonCopy         = "copy of another miner's update"
	ReasonLane         = "no gain on its assigned data"
	ReasonHead         = "no gain on the first half of its claimed samples"
	ReasonTail         = "no gain on the second half of its claimed samples"
)

// ErrBadEpoch marks an Epoch or Update set the validator itself got wrong.
var ErrBadEpoch = errors.New("verify: bad epoch")

// Verifier audits miners' updates epoch after epoch. It holds a model for
// forward passes and, per miner, what the lane test and the replay check
// remember between epochs. It is not safe for concurrent use.
type Verifier struct {
	cfg     Config
	model   *torch.Model
	decay   []bool // per parameter: AdamW decays it (a matrix)
	history *history
}

// New returns a Verifier for models of configuration mc on dev.
func New(cfg Config, mc torch.Config, dev torch.Device) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := torch.NewModel(mc, dev, 0)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	decay := make([]bool, 0, m.NumParams())
	for _, p := range m.Layout() {
		for range p.Numel() {
			decay = append(decay, len(p.Shape) == 2)
		}
	}
	return &Verifier{cfg: cfg, model: m, decay: decay, history: newHistory(cfg)}, nil
}

// Close frees the model.
func (v *Verifier) Close() error { return v.model.Close() }

// Config returns the verifier's configuration.
func (v *Verifier) Config() Config { return v.cfg }

func (ep Epoch) check(n int) error {
	switch {
	case len(ep.Start) != n:
		return fmt.Errorf("%w: start has %d values, the model %d", ErrBadEpoch, len(ep.Start), n)
	case ep.PrevMean != nil && len(ep.PrevMean) != n:
		return fmt.Errorf("%w: previous mean has %d values, the model %d", ErrBadEpoch, len(ep.PrevMean), n)
	case ep.MicroBatch < 1 || ep.Accum < 1:
		return fmt.Errorf("%w: micro-batch %d, accumulation %d", ErrBadEpoch, ep.MicroBatch, ep.Accum)
	case len(ep.LR) == 0:
		return fmt.Errorf("%w: no inner-step learning rates", ErrBadEpoch)
	case ep.Reference == nil:
		return fmt.Errorf("%w: no reference data", ErrBadEpoch)
	}
	for _, lr := range ep.LR {
		if !(lr >= 0) || math.IsInf(lr, 0) {
			return fmt.Errorf("%w: learning rate %v", ErrBadEpoch, lr)
		}
	}
	if firstNonFinite(ep.Start) >= 0 || ep.PrevMean != nil && firstNonFinite(ep.PrevMean) >= 0 {
		return fmt.Errorf("%w: non-finite start or previous mean", ErrBadEpoch)
	}
	return nil
}

// maxSamples is the most samples a miner can have trained in ep.
func (ep Epoch) maxSamples() int64 {
	return int64(len(ep.LR)) * int64(ep.MicroBatch) * int64(ep.Accum)
}

// steps is the number of inner steps a claim of n samples implies.
func (ep Epoch) steps(n int64) int {
	per := int64(ep.MicroBatch) * int64(ep.Accum)
	return int((n + per - 1) / per)
}

func firstNonFinite(v []float32) int {
	for i, x := range v {
		if x-x != 0 {
			return i
		}
	}
	return -1
}

// HeldOut is the mean next-token loss of params over the first n windows
// of ds, micro windows at a time (train.HeldOutLoss's measure, so it
// compares with the miners' held-out loss), and the windows counted.
func (v *Verifier) HeldOut(params []float32, ds HeldOutData, n int64, micro int) (float64, int, error) {
	if err := v.model.SetParams(params); err != nil {
		return 0, 0, err
	}
	return ds.HeldOutLoss(v.model, n, micro)
}

// HeldOutData is a held-out set that can evaluate a model (the validator
// passes the run's validation data through node/train).
type HeldOutData interface {
	HeldOutLoss(m *torch.Model, n int64, micro int) (float64, int, error)
}
