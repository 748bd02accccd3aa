package miner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dtrain-dev/dtrain/node/train"
)

// localWork is the epoch's local work from the parameters start, on the
// miner's lane of the epoch: diloco's inner steps, whose pseudo-gradient
// Δ = θ_start − θ_local it returns, or the gradient of one step's
// micro-batches. It returns the update, the mean loss and the samples.
func (m *Miner) localWork(ctx context.Context, start []float32, lane *epochLane, d *driver) ([]float32, float64, int64, error) {
	vec := make([]float32, len(start))
	if m.cfg.Swarm.Mode != "diloco" {
		loss, micro, samples, err := m.accumulate(ctx, lane, d)
		if err == nil {
			err = m.model.Grads(vec)
		}
		// The model summed the micro-batches' gradients; their mean is the
		// gradient of this miner's samples, which the round then averages
		// weighted by samples.
		for i := range vec {
			vec[i] /= float32(micro)
		}
		return vec, loss, samples, err
	}
	loss, samples, err := m.innerSteps(ctx, lane, d)
	if err == nil {
		err = m.model.Params(vec)
	}
	for i := range vec {
		vec[i] = start[i] - vec[i]
	}
	return vec, loss, samples, err
}

// innerSteps takes swarm.inner_steps local AdamW steps (fewer if ctx ends
// or the others finish the epoch first) and returns
// the mean loss and the samples. The learning-rate schedule and m.step
// count whole epochs (m.step advances by inner_steps in apply), so miners
// that took different numbers of steps still hold the same state.
func (m *Miner) innerSteps(ctx context.Context, lane *epochLane, d *driver) (float64, int64, error) {
	var loss float64
	var samples int64
	k, steps, began := 0, 0, time.Now()
	for steps < m.cfg.Swarm.InnerSteps && ctx.Err() == nil {
		if steps > 0 && d.othersReady.Load() && !m.fullEpochs {
			// Others have finished the epoch (this miner joined it late,
			// or is slower): stop here and average what it has, weighted
			// by its samples, rather than keep the swarm waiting.
			break
		}
		if err := m.model.ZeroGrad(); err != nil {
			return 0, 0, err
		}
		var l float64
		for a := 0; a < m.accum; a++ {
			var err error
			if l, err = m.microStep(lane, k, m.accum, l); err != nil {
				return 0, 0, err
			}
			k++
			samples += int64(lane.micro)
		}
		if _, err := m.model.ClipGradNorm(m.cfg.Optim.GradClip); err != nil {
			return 0, 0, err
		}
		if err := m.opt.Step(m.sched.At(m.step + steps)); err != nil {
			return 0, 0, err
		}
		loss += l
		steps++
		d.lossBits.Store(math.Float64bits(loss / float64(steps)))
		d.samples.Store(uint64(samples))
		d.rateBits.Store(math.Float64bits(float64(samples) / time.Since(began).Seconds()))
	}
	if steps == 0 {
		return 0, 0, ctx.Err()
	}
	return loss / float64(steps), samples, nil
}

// accumulate sums the gradients of the epoch's micro-batches, one after
// another, until the swarm has trained swarm.target_batch_size samples of
// the epoch (this miner's own and what the others at its epoch report,
// d.swarmSamples), another peer has announced it is ready to average, or
// this miner alone has the target; at least one micro-batch. It returns
// the mean loss, the micro-batches and the samples; the model holds the
// summed gradients.
func (m *Miner) accumulate(ctx context.Context, lane *epochLane, d *driver) (float64, int, int64, error) {
	if err := m.model.ZeroGrad(); err != nil {
		return 0, 0, 0, err
	}
	target := float64(m.cfg.Swarm.TargetBatchSize)
	var loss float64
	var samples int64
	k, began := 0, time.Now()
	for ctx.Err() == nil {
		if k > 0 && (float64(samples) >= target || d.othersReady.Load() || d.swarmSamples(samples) >= target) {
			break
		}
		var err error
		if loss, err = m.microStep(lane, k, 1, loss); err != nil {
			return 0, 0, 0, err
		}
		k++
		samples += int64(lane.micro)
		d.lossBits.Store(math.Float64bits(loss / float64(k)))
		d.samples.Store(uint64(samples))
		d.rateBits.Store(math.Float64bits(float64(samples) / time.Since(began).Seconds()))
	}
	if k == 0 {
		return 0, 0, 0, ctx.Err()
	}
	return loss / float64(k), k, samples, nil
}

// microStep runs forward and backward on the lane's micro-batch k with its
// dropout seed, its loss scaled by 1/n (the micro-batches whose gradients
// the step averages), and adds the scaled loss to l.
func (m *Miner) microStep(lane *epochLane, k, n int, l float64) (float64, error) {
	b, windows, err := lane.batch(k)
	if err != nil {
		return 0, err
	}
	seed := lane.seed(int64(k))
	if err := m.model.SeedDropout(seed); err != nil {
		return 0, err
	}
	loss, _, err := m.model.TrainStep(b, 1/float64(n))
	if err != nil {
		return 0, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, fmt.Errorf("training loss is %v (try a lower optim.lr)", loss)
	}
	lane.trained.add(windows, seed)
	m.tokens += int64(b.B * b.T)
	return l + loss/float64(n), nil
}

// errBadAverage is apply's refusal of an averaged update it cannot take: a
// group member can send values that make the mean, or the step taken from
// it, overflow. The epoch is dropped; the miner goes on.
var errBadAverage = errors.New("bad averaged update")

// apply takes the epoch's step from the averaged vector: the outer
// Nesterov step from the epoch's start parameters in diloco, the AdamW
// step in gradients mode. A mean that is not finite, or (diloco) whose
// step is not, or (gradients) whose norm is past float32's range, is
// refused with errBadAverage before it touches the model or the optimizer
// state. It returns the new parameters: diloco computes them on the host,
// gradients mode copies them off the device once.
func (m *Miner) apply(start, mean []float32) ([]float32, error) {
	var sumSq float64
	for i, v := range mean {
		if v-v != 0 {
			return nil, fmt.Errorf("%w: it holds %v at %d", errBadAverage, v, i)
		}
		sumSq += float64(v) * float64(v)
	}
	if m.cfg.Swarm.Mode == "diloco" {
		outer := train.OuterNesterov{LR: m.cfg.Swarm.OuterLR, Momentum: m.cfg.Swarm.OuterMomentum}
		next, momentum := slices.Clone(start), slices.Clone(m.momentum)
		if err := outer.Step(next, mean, momentum); err != nil {
			return nil, err
		}
		if i := nonFinite(next); i >= 0 {
			return nil, fmt.Errorf("%w: the outer step takes parameter %d to %v", errBadAverage, i, next[i])
		}
		if i := nonFinite(momentum); i >= 0 {
			return nil, fmt.Errorf("%w: the outer step takes momentum %d to %v", errBadAverage, i, momentum[i])
		}
		m.step += m.cfg.Swarm.InnerSteps
		copy(m.momentum, momentum)
		return next, m.model.SetParams(next)
	}
	// libtorch computes the gradients' norm for clipping in float32: past
	// its range the norm is Inf and the clipped step NaN.
	if norm := math.Sqrt(sumSq); norm > math.MaxFloat32 {
		return nil, fmt.Errorf("%w: norm %.3g", errBadAverage, norm)
	}
	if err := m.model.SetGrads(mean); err != nil {
		return nil, err
	}
	if _, err := m.model.ClipGradNorm(m.cfg.Optim.GradClip); err != nil {
		return nil, err
	}
	if err := m.opt.Step(m.sched.At(m.step)); err != nil {
		return nil, err
	}
	m.step++
	params := make([]float32, m.model.NumParams())
	return params, m.model.Params(params)
}

// maxMeanRatio bounds a group mean's norm by this multiple of the miner's
// own update's (scaled up for a miner that trained less than a full
// epoch): averaging honest updates never lengthens them that much, so a
// longer mean is garbage that some members sent, and the miner refuses it
// loudly rather than learn it.
const maxMeanRatio = 10

// checkMean refuses, with errBadAverage, a group mean far longer than this
// miner's own update own of samples samples.
func (m *Miner) checkMean(mean, own []float32, samples int64) error {
	if len(own) != len(mean) || samples <= 0 {
		return nil // nothing to compare with
	}
	var mm, oo float64
	for i := range mean {
		mm += float64(mean[i]) * float64(mean[i])
		oo += float64(own[i]) * float64(own[i])
	}
	if oo == 0 {
		return nil
	}
	scale := max(1, float64(m.cfg.MaxEpochSamples())/float64(samples))
	if ratio := math.Sqrt(mm / oo); ratio > maxMeanRatio*scale {
		return fmt.Errorf("%w: its norm is %.3g times this miner's own update's (at most %g): members sent garbage", errBadAverage, ratio, maxMeanRatio*scale)
	}
	return nil
}

// nonFinite is the index of the first NaN or ±Inf in v, or -1.
func nonFinite(v []float32) int {
	for i, x := range v {
		if x-x != 0 {
			return i
		}
	}
	return -1
}

// heldOutLoss is the model's mean loss over loop.eval_tokens of the
// held-out data.
func (m *Miner) heldOutLoss() (float64, error) {
	windows := int64(max(1, m.cfg.Loop.EvalTokens/m.cfg.Data.SeqLen))
	loss, _, err := train.HeldOutLoss(m.model, m.opts.Val, windows, m.cfg.Loop.MicroBatch)
	return loss, err
}
