package validator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/score"
	"github.com/dtrain-dev/dtrain/node/train"
	"github.com/dtrain-dev/dtrain/node/verify"
	"github.com/dtrain-dev/dtrain/torch"
)

// WorkCheck is the Verifier that checks the work behind diloco updates
// with node/verify: it builds verify's Epoch from the swarm's state of the
// audited epoch (θ and the previous average, from a StateSource) and the
// run's rules (the schedule's learning rates from the state's step, AdamW,
// the micro-batch and accumulation), and each miner's Update from its
// audit and its lane of the run's data (node/data, recomputed from its id
// and the epoch), and runs verify's Audit once per call: the audited
// contributors of one round, which is the validator's one group of the
// epoch (an aux member announces once per epoch). The reference windows
// are the lane of an id drawn from this validator's private key and the
// epoch, so no miner can know them.
//
// With fewer than three audits verify's comparisons between updates (the
// uncorrelated and stale checks, the lane test's paired comparison) do not
// run: the vector checks and an unpaired lane test still do. Where verify
// cannot run (an epoch outside the cadence, a state not held, the run
// over), the audits go to NormCheck, and the log says why.
//
// WorkCheck counts its cost against the audited miners' (Cost): forward
// tokens, a forward and backward counted as 3 forwards, the measure of
// node/verify's Figures.
type WorkCheck struct {
	rules  workRules
	states StateSource
	every  uint64
	log    zerolog.Logger
	secret [32]byte // keys the reference lanes

	val        *data.Dataset // held-out data; nil: no held-out loss
	valWindows int64

	mu        sync.Mutex // verify.Verifier is not safe for concurrent use
	v         *verify.Verifier
	cost      WorkCost
	fallback  NormCheck
	heldOut   []HeldOut       // evaluated, not yet taken
	evaluated map[uint64]bool // epochs whose state was evaluated (recent ones)
}

// WorkCost is the compute of a validator's work checks and of the miners'
// work they checked, in forward-pass tokens (node/verify's Cost; a
// miner's training step counts 3 forwards per token).
type WorkCost struct {
	Epochs    int     // epochs checked with node/verify
	PrevMeans int     // of those, the epochs whose previous average was known
	Validator int64   // tokens through the validator's forward passes
	Miners    int64   // 3 × the tokens of the samples the audited miners claimed
	Seconds   float64 // wall time of the validator's audits
}

// Ratio is Validator / Miners, or NaN before any work was checked.
func (c WorkCost) Ratio() float64 {
	if c.Miners == 0 {
		return math.NaN()
	}
	return float64(c.Validator) / float64(c.Miners)
}

// workRules is what a validator must know of the run to recompute and
// bound a miner's diloco epoch.
type workRules struct {
	run        string
	ds         *data.Dataset
	order      data.Order
	sched      train.Schedule
	adamw      torch.AdamWConfig
	micro      int
	accum      int
	seqLen     int
	innerSteps int
}

// WorkOptions configures NewWorkCheck.
type WorkOptions struct {
	// Every runs node/verify in the epochs whose number is a multiple of
	// it, NormCheck in the others; 0 means 1.
	Every int
	// Device runs the validator's model.
	Device torch.Device
	// Verify is node/verify's configuration; its zero value means
	// verify.DefaultConfig. Its Seed is replaced (see Seed).
	Verify verify.Config
	// Seed keys the validator's private choices (verify's Seed, the
	// reference lanes); 0 draws them from crypto/rand, as a validator
	// must: a miner that knew them would know which windows are tested.
	Seed uint64
	// Val is the run's held-out data: each audited epoch's start state
	// (the swarm's state after the epoch before) is evaluated on
	// ValWindows of its windows, as the miners evaluate theirs; nil: none.
	Val        *data.Dataset
	ValWindows int64
	Log        zerolog.Logger
}

// HeldOut is the held-out loss of the swarm's state after Epoch.
type HeldOut struct {
	Epoch  uint64
	Loss   float64
	Tokens int // held-out tokens counted
}

// valData evaluates a model on a dataset as node/train does.
type valData struct{ ds *data.Dataset }

func (v valData) HeldOutLoss(m *torch.Model, n int64, micro int) (float64, int, error) {
	return train.HeldOutLoss(m, v.ds, n, micro)
}

// ErrNotDiLoCo reports a run whose updates node/verify cannot check.
var ErrNotDiLoCo = errors.New("node/verify checks diloco runs only")

// NewWorkCheck returns a WorkCheck for the run whose miners run with
// config run and train on ds, auditing against the states src gives.
func NewWorkCheck(run config.Miner, ds *data.Dataset, src StateSource, o WorkOptions) (*WorkCheck, error) {
	if run.Swarm.Mode != "diloco" {
		return nil, fmt.Errorf("work check: swarm.mode %q: %w", run.Swarm.Mode, ErrNotDiLoCo)
	}
	if err := run.Validate(); err != nil {
		return nil, fmt.Errorf("work check: the run's config: %w", err)
	}
	if ds == nil || src == nil {
		return nil, errors.New("work check: the run's data and a state source are required")
	}
	if ds.SeqLen() != run.Data.SeqLen {
		return nil, fmt.Errorf("work check: the data's windows are %d tokens, the run's data.seq_len %d", ds.SeqLen(), run.Data.SeqLen)
	}
	order, err := data.NewOrder(run.RunID, run.Seed, ds.Len())
	if err != nil {
		return nil, fmt.Errorf("work check: %w", err)
	}
	w := &WorkCheck{
		rules: workRules{run: run.RunID, ds: ds, order: order,
			sched: train.Schedule{LR: run.Optim.LR, MinLR: run.Optim.MinLR, Warmup: run.Optim.WarmupSteps, Total: run.Loop.MaxSteps},
			adamw: train.AdamWConfig(run.Optim), micro: run.Loop.MicroBatch, accum: max(1, run.AccumSteps()),
			seqLen: run.Data.SeqLen, innerSteps: run.Swarm.InnerSteps},
		states: src, every: uint64(max(1, o.Every)), log: o.Log, val: o.Val, valWindows: max(1, o.ValWindows),
	}
	if o.Seed != 0 {
		w.secret = sha256.Sum256(binary.LittleEndian.AppendUint64([]byte("dtrain/validator/seed\x00"), o.Seed))
	} else if _, err := rand.Read(w.secret[:]); err != nil {
		return nil, err
	}
	vc := o.Verify
	if vc == (verify.Config{}) {
		vc = verify.DefaultConfig()
	}
	vc.Seed = binary.LittleEndian.Uint64(w.secret[:8]) ^ binary.LittleEndian.Uint64(w.secret[8:16])
	md := run.Model
	mc := torch.NewConfig(md.NLayer, md.NHead, md.NEmbd, md.NPositions, md.VocabSize)
	if w.v, err = verify.New(vc, mc, o.Device); err != nil {
		return nil, fmt.Errorf("work check: %w", err)
	}
	return w, nil
}

// Close frees the model.
func (w *WorkCheck) Close() error { return w.v.Close() }

// TakeHeldOut returns the held-out losses evaluated since the last call.
func (w *WorkCheck) TakeHeldOut() []HeldOut {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.heldOut
	w.heldOut = nil
	return out
}

// evalHeldOut evaluates epoch e's start state, the swarm's state after
// e−1, on the held-out windows, once per epoch; w.mu is held.
func (w *WorkCheck) evalHeldOut(e uint64, start []float32) {
	if w.val == nil || e == 0 || w.evaluated[e-1] {
		return
	}
	if w.evaluated == nil {
		w.evaluated = map[uint64]bool{}
	}
	for k := range w.evaluated {
		if k+8 < e {
			delete(w.evaluated, k)
		}
	}
	w.evaluated[e-1] = true
	t0 := time.Now()
	loss, n, err := w.v.HeldOut(start, valData{w.val}, w.valWindows, w.rules.micro)
	if err != nil {
		w.log.Warn().Err(err).Uint64("epoch", e-1).Msg("held-out loss")
		return
	}
	w.log.Info().Uint64("epoch", e-1).Float64("val_loss", loss).Int("tokens", n).Dur("took_ms", time.Since(t0)).Msg("held-out loss of the swarm's state")
	w.heldOut = append(w.heldOut, HeldOut{Epoch: e - 1, Loss: loss, Tokens: n})
}

// Cost returns the compute of the checks so far and of the work they
// checked.
func (w *WorkCheck) Cost() WorkCost {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cost
}

// Verify implements Verifier.
func (w *WorkCheck) Verify(ctx context.Context, audits []Audit) []score.Verdict {
	if len(audits) == 0 {
		return nil
	}
	e := audits[0].Epoch
	ep, err := w.epoch(ctx, e)
	if err != nil {
		w.log.Info().Uint64("epoch", e).Str("why", err.Error()).Int("miners", len(audits)).Msg("work not checked: norm checks only")
		return w.fallback.Verify(ctx, audits)
	}
	ups := make([]verify.Update, 0, len(audits))
	for _, a := range audits {
		if a.Epoch != e {
			continue
		}
		lane := w.rules.order.Lane(e, a.Miner)
		ups = append(ups, verify.Update{Miner: a.Miner, Vector: a.Update, Samples: claimedSamples(a.Weight), Batches: w.rules.batches(ctx, lane)})
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.evalHeldOut(e, ep.Start)
	t0, cpu0 := time.Now(), processCPU()
	out, shared, err := w.v.Audit(ep, ups)
	took, cpu := time.Since(t0), processCPU()-cpu0
	if err != nil {
		w.log.Warn().Err(err).Uint64("epoch", e).Msg("work check failed: norm checks only")
		return w.fallback.Verify(ctx, audits)
	}
	spent, trained := shared.Tokens, int64(0)
	verdicts := make([]score.Verdict, len(out))
	for i, o := range out {
		verdicts[i] = o.Verdict
		spent += o.Evidence.Cost.Tokens
		if s := ups[i].Samples; s >= 1 && s <= int64(len(ep.LR))*int64(w.rules.micro*w.rules.accum) {
			trained += 3 * s * int64(w.rules.seqLen)
		}
		w.logOutcome(e, o)
	}
	w.cost.Epochs++
	if ep.PrevMean != nil {
		w.cost.PrevMeans++
	}
	w.cost.Validator += spent
	w.cost.Miners += trained
	w.cost.Seconds += took.Seconds()
	ratio := math.NaN()
	if trained > 0 {
		ratio = float64(spent) / float64(trained)
	}
	w.log.Info().Uint64("epoch", e).Int("miners", len(ups)).Bool("prev_mean", ep.PrevMean != nil).
		Int64("validator_tokens", spent).Int64("miner_tokens", trained).Float64("ratio", ratio).
		Float64("total_ratio", w.cost.Ratio()).Dur("took_ms", took).Float64("cpu_s", cpu.Seconds()).Msg("work checked")
	return verdicts
}

// epoch builds verify's Epoch of e, or says why it cannot.
func (w *WorkCheck) epoch(ctx context.Context, e uint64) (verify.Epoch, error) {
	if e%w.every != 0 {
		return verify.Epoch{}, fmt.Errorf("verify.every_epochs is %d", w.every)
	}
	st, err := w.states.EpochState(ctx, e)
	if err != nil {
		return verify.Epoch{}, err
	}
	r := w.rules
	steps := r.innerSteps
	lr := make([]float64, steps)
	for t := range lr {
		lr[t] = r.sched.At(st.Step + t)
	}
	ref := r.order.Lane(e, w.referenceID(e))
	return verify.Epoch{Number: e, Start: st.Start, PrevMean: st.PrevMean, LR: lr, AdamW: r.adamw,
		MicroBatch: r.micro, Accum: r.accum, Reference: r.batches(ctx, ref)}, nil
}

// referenceID is the id whose lane gives epoch e's reference windows: a
// hash of this validator's secret and e, which no miner can compute.
func (w *WorkCheck) referenceID(e uint64) string {
	h := sha256.New()
	h.Write([]byte("dtrain/validator/reference\x00"))
	h.Write(w.secret[:])
	h.Write(binary.LittleEndian.AppendUint64(nil, e))
	return "reference/" + hex.EncodeToString(h.Sum(nil))
}

// batches returns micro-batch k of lane as the miners build it (node/miner
// trains micro-batch k on the lane's windows MicroBatch(micro, k)). Once ctx
// is done it returns ctx's error, which ends an audit in progress (its lane
// tests are Inconclusive) so that a stopping validator does not wait for
// the epoch's forward passes.
func (r workRules) batches(ctx context.Context, lane data.Lane) func(k int) (torch.Batch, error) {
	return func(k int) (torch.Batch, error) {
		if err := ctx.Err(); err != nil {
			return torch.Batch{}, err
		}
		windows, err := lane.MicroBatch(r.micro, int64(k))
		if err != nil {
			return torch.Batch{}, err
		}
		t := r.seqLen
		b := torch.Batch{B: r.micro, T: t, X: make([]int32, r.micro*t), Y: make([]int32, r.micro*t)}
		for i, win := range windows {
			if err := r.ds.Window(win, b.X[i*t:(i+1)*t], b.Y[i*t:(i+1)*t]); err != nil {
				return torch.Batch{}, err
			}
		}
		return b, nil
	}
}

// claimedSamples is a member's announced weight as verify's sample count:
// a weight that is not a whole number in range (the miner's own claim,
// unchecked until here) becomes 0, which verify refuses as an impossible
// count.
func claimedSamples(w float64) int64 {
	if !(w >= 1 && w <= 1<<53) || w != math.Trunc(w) {
		return 0
	}
	return int64(w)
}

// logOutcome logs one miner's audit and the evidence behind its verdict.
func (w *WorkCheck) logOutcome(e uint64, o verify.Outcome) {
	ev, vd := o.Evidence, o.Verdict
	l := w.log.Info().Uint64("epoch", e).Str("miner", vd.Miner).Str("verdict", verdictName(vd.Kind)).Str("reason", vd.Reason).
		Float64("quality", vd.Quality).Float64("norm", ev.Norm).Float64("bound", ev.Bound).
		Float64("peer_cos", ev.PeerCos).Float64("prev_cos", ev.PrevCos).Float64("now", ev.Now).Float64("prev", ev.Prev).
		Float64("closest", ev.Closest).Str("copy", ev.Copy).Float64("past_cos", ev.PastCos).Int64("replay", ev.Replay).
		Float64("lane_all", ev.Lane.All).Float64("lane_head", ev.Lane.Head).Float64("lane_tail", ev.Lane.Tail).
		Float64("mean_all", ev.LaneMean.All).Float64("mean_head", ev.LaneMean.Head).Float64("mean_tail", ev.LaneMean.Tail).
		Float64("power_all", ev.Power.All).Float64("power_head", ev.Power.Head).Float64("power_tail", ev.Power.Tail).
		Float64("gain", ev.Gain).Int64("tokens", ev.Cost.Tokens)
	if o.Err != nil {
		l = l.AnErr("lane_err", o.Err)
	}
	l.Msg("audit")
}

func verdictName(k score.VerdictKind) string {
	switch k {
	case score.Pass:
		return "pass"
	case score.Cheat:
		return "cheat"
	}
	return "inconclusive"
}

// processCPU is the CPU time this process has used (user and system, all
// threads: libtorch's included, and whatever else the process runs).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
