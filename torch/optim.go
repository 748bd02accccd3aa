package torch

/*
#include "dtorch.h"
*/
import "C"

import (
	"fmt"
	"sync"
)

// AdamWConfig holds AdamW's hyperparameters other than the learning rate,
// which each Step takes so schedules live in Go.
type AdamWConfig struct {
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64 // applied to 2-D parameters (matrices) only
}

// DefaultAdamW is GPT-2-style AdamW: betas (0.9, 0.95), eps 1e-8, decay 0.1.
var DefaultAdamW = AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}

// AdamW updates a Model's flat parameters from its flat gradient with
// torch.optim.AdamW's update. Close frees its state; the model must not be
// closed before the optimizer.
type AdamW struct {
	mu    sync.Mutex
	h     *C.dt_adamw
	model *Model
	cfg   AdamWConfig
}

// NewAdamW creates an optimizer for m with zero moments.
func NewAdamW(m *Model, cfg AdamWConfig) (*AdamW, error) {
	cc := C.dt_adamw_config{beta1: C.double(cfg.Beta1), beta2: C.double(cfg.Beta2), eps: C.double(cfg.Eps), weight_decay: C.double(cfg.WeightDecay)}
	var h *C.dt_adamw
	err := m.with(func(mh *C.dt_model) error { return cerr(C.dt_adamw_new(mh, &cc, &h)) })
	if err != nil {
		return nil, fmt.Errorf("new adamw: %w", err)
	}
	return &AdamW{h: h, model: m, cfg: cfg}, nil
}

// Config returns the optimizer's hyperparameters.
func (o *AdamW) Config() AdamWConfig { return o.cfg }

// Close frees the optimizer state. It is safe to call more than once.
func (o *AdamW) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.h != nil {
		C.dt_adamw_free(o.h)
		o.h = nil
	}
	return nil
}

// with runs f holding both the optimizer's and the model's locks.
func (o *AdamW) with(f func(h *C.dt_adamw) error) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.h == nil {
		return ErrClosed
	}
	return o.model.with(func(*C.dt_model) error { return f(o.h) })
}

// Step applies one update with learning rate lr.
func (o *AdamW) Step(lr float64) error {
	return o.with(func(h *C.dt_adamw) error { return cerr(C.dt_adamw_step(h, C.double(lr))) })
}

// AdamWState is the optimizer's state in the model's flat layout.
type AdamWState struct {
	ExpAvg, ExpAvgSq []float32
	Step             int64
}

// State copies out the moments and step count.
func (o *AdamW) State() (AdamWState, error) {
	n := o.model.NumParams()
	s := AdamWState{ExpAvg: make([]float32, n), ExpAvgSq: make([]float32, n)}
	var step C.int64_t
	err := o.with(func(h *C.dt_adamw) error {
		return cerr(C.dt_adamw_get_state(h, f32(s.ExpAvg), f32(s.ExpAvgSq), C.int64_t(n), &step))
	})
	s.Step = int64(step)
	return s, err
}

// SetState replaces the moments and step count; values must be finite and
// second moments non-negative.
func (o *AdamW) SetState(s AdamWState) error {
	n := o.model.NumParams()
	if int64(len(s.ExpAvg)) != n || int64(len(s.ExpAvgSq)) != n {
		return fmt.Errorf("adamw state: %d and %d values for a model of %d", len(s.ExpAvg), len(s.ExpAvgSq), n)
	}
	if s.Step < 0 {
		return fmt.Errorf("adamw state: negative step %d", s.Step)
	}
	if i := firstNonFinite(s.ExpAvg); i >= 0 {
		return fmt.Errorf("adamw state: exp_avg[%d] is %v", i, s.ExpAvg[i])
	}
	for i, v := range s.ExpAvgSq {
		if v-v != 0 || v < 0 {
			return fmt.Errorf("adamw state: exp_avg_sq[%d] is %v", i, v)
		}
	}
	return o.with(func(h *C.dt_adamw) error {
		return cerr(C.dt_adamw_set_state(h, f32(s.ExpAvg), f32(s.ExpAvgSq), C.int64_t(n), C.int64_t(s.Step)))
	})
}
