package miner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/progress"
	"github.com/dtrain-dev/dtrain/node/train"
	"github.com/dtrain-dev/dtrain/torch"
)

// errRestartEpoch means the epoch's local work was dropped for a reloaded
// state: the epoch starts again.
var errRestartEpoch = errors.New("epoch restarted from the swarm's state")

// runEpoch trains locally, averages with the epoch's group, applies the
// result and evaluates.
func (m *Miner) runEpoch(ctx context.Context) (EpochEvent, error) {
	ev := EpochEvent{Epoch: m.epoch, Mode: m.cfg.Swarm.Mode}
	n := int(m.model.NumParams())
	start := make([]float32, n)
	if err := m.model.Params(start); err != nil {
		return ev, err
	}
	batches, err := m.epochBatches()
	if err != nil {
		return ev, err
	}
	t0 := time.Now()
	var vec []float32
	if m.cfg.Swarm.Mode == "diloco" {
		ev.Loss, ev.Samples, err = m.innerSteps(ctx, batches)
		if err == nil {
			// The pseudo-gradient Δ = θ_start − θ_local.
			vec = make([]float32, n)
			if err = m.model.Params(vec); err == nil {
				for i := range vec {
					vec[i] = start[i] - vec[i]
				}
			}
		}
	} else {
		ev.Loss, ev.Samples, err = m.accumulate(batches)
		if err == nil {
			vec = make([]float32, n)
			err = m.model.Grads(vec)
		}
	}
	if err != nil {
		return ev, err
	}
	ev.TrainTime = time.Since(t0)
	if ctx.Err() != nil {
		return ev, nil
	}
	if m.cfg.Swarm.StateFromPeers && m.diverged() {
		// This epoch's work started from a state the majority does not
		// hold: drop it, take the majority's state and train the epoch
		// again.
		if err := m.loadFromPeers(ctx, m.epoch, true); err != nil {
			m.log.Warn().Err(err).Msg("parameters differ from the swarm's and could not be reloaded")
		} else {
			return ev, errRestartEpoch
		}
	}
	res, err := m.average(ctx, m.epoch, vec, float64(ev.Samples))
	ev.Group, ev.SyncTime, ev.BytesSent = res.group, res.took, res.bytesSent
	mean := res.mean
	if err != nil || mean == nil {
		if ctx.Err() != nil {
			return ev, nil
		}
		ev.Alone = fmt.Sprint(err)
		if m.expected(m.epoch) > 1 {
			// Others were training this epoch: applying this update alone
			// would leave this miner with parameters nobody else holds.
			// Dropping it keeps the epoch's start state, which the others
			// that failed also keep and those that averaged can serve.
			ev.Dropped = true
			m.log.Warn().Err(err).Uint64("epoch", m.epoch).Msg("averaging failed; dropping this epoch's update")
			mean = nil
		} else {
			ev.Contributors = 1
			m.log.Warn().Err(err).Uint64("epoch", m.epoch).Msg("no peers: applying this miner's own update alone")
			mean = vec
		}
	} else {
		ev.Contributors = res.contributors
	}
	if mean == nil {
		if err := m.model.SetParams(start); err != nil {
			return ev, err
		}
	} else if err := m.apply(start, mean); err != nil {
		return ev, err
	}
	params := make([]float32, n)
	if err := m.model.Params(params); err != nil {
		return ev, err
	}
	ev.ParamHash = paramHash(params)
	m.epoch++
	ev.Tokens = m.tokens
	if m.opts.Val != nil && m.cfg.Swarm.EvalEvery > 0 && m.epoch%uint64(m.cfg.Swarm.EvalEvery) == 0 {
		windows := int64(max(1, m.cfg.Loop.EvalTokens/m.cfg.Data.SeqLen))
		if ev.ValLoss, _, err = train.HeldOutLoss(m.model, m.opts.Val, windows, m.cfg.Loop.MicroBatch); err != nil {
			return ev, err
		}
	}
	return ev, nil
}

// epochBatches returns the epoch's micro-batches in order, as a function of
// their index: this miner's lane of the epoch's data order among the peers
// it sees (node/data Assignment), so a validator can recompute them.
func (m *Miner) epochBatches() (func(k int) (torch.Batch, error), error) {
	peers := m.lanePeers()
	micro, t := m.cfg.Loop.MicroBatch, m.cfg.Data.SeqLen
	a := data.Assignment{Order: m.order, Epoch: m.epoch, Peers: peers, PerStep: micro}
	return func(k int) (torch.Batch, error) {
		if int64(k+1)*int64(micro) > a.Capacity() {
			return torch.Batch{}, fmt.Errorf("epoch %d needs more than the %d windows per peer the data holds", m.epoch, a.Capacity())
		}
		wins, err := a.Windows(m.self, int64(k))
		if err != nil {
			return torch.Batch{}, err
		}
		b := torch.Batch{B: micro, T: t, X: make([]int32, micro*t), Y: make([]int32, micro*t)}
		for i, w := range wins {
			if err := m.opts.Train.Window(w, b.X[i*t:(i+1)*t], b.Y[i*t:(i+1)*t]); err != nil {
				return torch.Batch{}, err
			}
		}
		return b, nil
	}, nil
}

// innerSteps takes swarm.inner_steps local AdamW steps (fewer if ctx ends,
// max_steps is reached or the others finish the epoch first) and returns
// the mean loss and the samples. The learning-rate schedule and m.step
// count whole epochs (m.step advances by inner_steps in apply), so miners
// that took different numbers of steps still hold the same state.
func (m *Miner) innerSteps(ctx context.Context, batches func(int) (torch.Batch, error)) (float64, int64, error) {
	var loss float64
	var samples int64
	k, steps, began := 0, 0, time.Now()
	for steps < m.cfg.Swarm.InnerSteps && m.step+steps < m.cfg.Loop.MaxSteps && ctx.Err() == nil {
		if steps > 0 && m.inbox.othersReady(m.epoch) {
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
			b, err := batches(k)
			if err != nil {
				return 0, 0, err
			}
			if l, err = m.microStep(b, k, l); err != nil {
				return 0, 0, err
			}
			k++
			samples += int64(b.B)
		}
		if _, err := m.model.ClipGradNorm(m.cfg.Optim.GradClip); err != nil {
			return 0, 0, err
		}
		if err := m.opt.Step(m.sched.At(m.step + steps)); err != nil {
			return 0, 0, err
		}
		loss += l
		steps++
		rate := float64(samples) / time.Since(began).Seconds()
		m.view.update(func(r *progress.Report) {
			r.Samples, r.SamplesPerSec, r.HasLoss, r.Loss = uint64(samples), rate, true, float32(l)
		})
	}
	if steps == 0 {
		return 0, 0, ctx.Err()
	}
	return loss / float64(steps), samples, nil
}

// accumulate computes the gradient of one step's micro-batches and returns
// the mean loss and the samples.
func (m *Miner) accumulate(batches func(int) (torch.Batch, error)) (float64, int64, error) {
	if err := m.model.ZeroGrad(); err != nil {
		return 0, 0, err
	}
	var l float64
	var samples int64
	for k := 0; k < m.accum; k++ {
		b, err := batches(k)
		if err != nil {
			return 0, 0, err
		}
		if l, err = m.microStep(b, k, l); err != nil {
			return 0, 0, err
		}
		samples += int64(b.B)
	}
	return l, samples, nil
}

// microStep runs forward and backward on b, adding the loss's share to l.
func (m *Miner) microStep(b torch.Batch, k int, l float64) (float64, error) {
	seed := data.SplitMix64(m.cfg.Seed ^ data.SplitMix64(m.epoch<<24|uint64(k)))
	if err := m.model.SeedDropout(seed); err != nil {
		return 0, err
	}
	loss, _, err := m.model.TrainStep(b, 1/float64(m.accum))
	if err != nil {
		return 0, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, fmt.Errorf("training loss is %v (try a lower optim.lr)", loss)
	}
	m.tokens += int64(b.B * b.T)
	return l + loss/float64(m.accum), nil
}

// apply takes the epoch's step from the averaged vector: the outer
// Nesterov step in diloco, the AdamW step in gradients mode. A non-finite
// mean is refused, so a bad average never touches the model.
func (m *Miner) apply(start, mean []float32) error {
	for i, v := range mean {
		if v-v != 0 {
			return fmt.Errorf("averaged update holds %v at %d", v, i)
		}
	}
	if m.cfg.Swarm.Mode == "diloco" {
		m.step = min(m.step+m.cfg.Swarm.InnerSteps, m.cfg.Loop.MaxSteps)
		lr, mu := float32(m.cfg.Swarm.OuterLR), float32(m.cfg.Swarm.OuterMomentum)
		next := make([]float32, len(start))
		// Every product is rounded on its own (float32(...)): Go fuses
		// a*b+c into one FMA on arm64 but not on amd64, and miners of both
		// must hold the same parameters.
		for i, d := range mean {
			m.momentum[i] = float32(mu*m.momentum[i]) + d
			next[i] = start[i] - float32(lr*(d+float32(mu*m.momentum[i])))
		}
		return m.model.SetParams(next)
	}
	if err := m.model.SetGrads(mean); err != nil {
		return err
	}
	if _, err := m.model.ClipGradNorm(m.cfg.Optim.GradClip); err != nil {
		return err
	}
	if err := m.opt.Step(m.sched.At(m.step)); err != nil {
		return err
	}
	m.step++
	return nil
}
