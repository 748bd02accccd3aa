package verify

import (
	"time"

	"github.com/dtrain-dev/dtrain/node/train"
	"github.com/dtrain-dev/dtrain/torch"
)

// simConfig is the simulated run: a tiny GPT-2 on the synthetic corpus
// and its DiLoCo settings, small enough for many seeded trials in a test.
type simConfig struct {
	model      torch.Config
	fanout     int     // the corpus's successors per token
	noise      float64 // its share of uniform tokens
	micro      int
	accum      int
	innerSteps int
	epochs     int
	sched      train.Schedule
	adam       torch.AdamWConfig
	outer      train.OuterNesterov
}

func tinySim() simConfig {
	c := simConfig{
		model:      torch.NewConfig(1, 2, 32, 32, 256),
		fanout:     4,
		noise:      0.3,
		micro:      16,
		accum:      1,
		innerSteps: 40,
		epochs:     4,
		adam:       torch.DefaultAdamW,
		outer:      train.OuterNesterov{LR: 0.7, Momentum: 0.9},
	}
	// The first epochs of a run twenty epochs long: warmup, then the top
	// of the cosine, where a run spends most of its steps.
	c.sched = train.Schedule{LR: 3e-3, MinLR: 3e-4, Warmup: 8, Total: 20 * c.innerSteps}
	return c
}

// lrs is the learning rate of each inner step of epoch e, as the miner's
// schedule gives it (its step counter advances by inner_steps per epoch).
func (c simConfig) lrs(e int) []float64 {
	out := make([]float64, c.innerSteps)
	for t := range out {
		out[t] = c.sched.At(e*c.innerSteps + t)
	}
	return out
}

// simMiner is one miner's model and optimizer, kept across epochs as a
// real miner keeps them.
type simMiner struct {
	model *torch.Model
	opt   *torch.AdamW
}

func newSimMiner(cfg simConfig, start []float32) (*simMiner, error) {
	m, err := torch.NewModel(cfg.model, torch.CPU, 1)
	if err != nil {
		return nil, err
	}
	o, err := torch.NewAdamW(m, cfg.adam)
	if err != nil {
		m.Close()
		return nil, err
	}
	return &simMiner{model: m, opt: o}, nil
}

func (s *simMiner) close() {
	s.opt.Close()
	s.model.Close()
}

// train takes steps inner steps of epoch e from start on l's micro-batches,
// as node/miner does (accumulation, dropout seeded per micro-batch,
// clipping, AdamW at the schedule's rate), and returns the pseudo-gradient
// start − θ and the time it took.
func (s *simMiner) train(cfg simConfig, e int, start []float32, l lane, steps int) ([]float32, time.Duration, error) {
	t0 := time.Now()
	if err := s.model.SetParams(start); err != nil {
		return nil, 0, err
	}
	lrs := cfg.lrs(e)
	k := 0
	for st := 0; st < steps; st++ {
		if err := s.model.ZeroGrad(); err != nil {
			return nil, 0, err
		}
		for a := 0; a < cfg.accum; a++ {
			b, err := l.batch(k)
			if err != nil {
				return nil, 0, err
			}
			if err := s.model.SeedDropout(l.dropoutSeed(k)); err != nil {
				return nil, 0, err
			}
			if _, _, err := s.model.TrainStep(b, 1/float64(cfg.accum)); err != nil {
				return nil, 0, err
			}
			k++
		}
		if _, err := s.model.ClipGradNorm(1); err != nil {
			return nil, 0, err
		}
		if err := s.opt.Step(lrs[st]); err != nil {
			return nil, 0, err
		}
	}
	p := make([]float32, len(start))
	if err := s.model.Params(p); err != nil {
		return nil, 0, err
	}
	for i := range p {
		p[i] = start[i] - p[i]
	}
	return p, time.Since(t0), nil
}
