package torch

/*
#include "dtorch.h"
*/
import "C"

import (
	"fmt"
	"math"
)

// Batch is B sequences of T tokens, row-major: inputs X and next-token
// targets Y, B·T each. A target of -1 is not counted by the loss.
type Batch struct {
	X, Y []int32
	B, T int
}

// Ignore is the target value that the loss skips.
const Ignore = -1

// check validates the batch against the model before it crosses into C.
func (b Batch) check(c Config, targets bool) error {
	if b.B < 1 || b.T < 1 {
		return fmt.Errorf("batch: B and T must be >= 1, got %d×%d", b.B, b.T)
	}
	if b.T > c.NPositions {
		return fmt.Errorf("batch: sequence length %d exceeds n_positions %d", b.T, c.NPositions)
	}
	if len(b.X) != b.B*b.T {
		return fmt.Errorf("batch: %d inputs for %d×%d", len(b.X), b.B, b.T)
	}
	if err := checkTokens("input", b.X, c.VocabSize, false); err != nil {
		return err
	}
	if !targets {
		return nil
	}
	if len(b.Y) != b.B*b.T {
		return fmt.Errorf("batch: %d targets for %d×%d", len(b.Y), b.B, b.T)
	}
	return checkTokens("target", b.Y, c.VocabSize, true)
}

func checkTokens(what string, toks []int32, vocab int, allowIgnore bool) error {
	for i, t := range toks {
		if int(t) >= vocab || t < 0 && !(allowIgnore && t == Ignore) {
			return fmt.Errorf("batch: %s %d is token %d, outside the vocabulary [0, %d)", what, i, t, vocab)
		}
	}
	return nil
}

// TrainStep runs forward, loss and backward over the batch with dropout on,
// adding the gradient of loss·scale to the flat gradient (use scale 1/k to
// accumulate k micro-batches). It returns the mean loss over counted
// targets and their number.
func (m *Model) TrainStep(b Batch, scale float64) (loss float64, count int, err error) {
	if err := b.check(m.cfg, true); err != nil {
		return 0, 0, err
	}
	var l C.double
	var n C.int64_t
	err = m.with(func(h *C.dt_model) error {
		return cerr(C.dt_model_train_step(h, i32(b.X), i32(b.Y), C.int64_t(b.B), C.int64_t(b.T), C.double(scale), &l, &n))
	})
	if err != nil {
		return 0, 0, fmt.Errorf("train step: %w", err)
	}
	if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
		return float64(l), int(n), fmt.Errorf("train step: loss is %v", float64(l))
	}
	return float64(l), int(n), nil
}

// EvalLoss returns the sum of next-token cross-entropy over the counted
// targets of the batch and their number, without gradients or dropout.
func (m *Model) EvalLoss(b Batch) (sum float64, count int, err error) {
	if err := b.check(m.cfg, true); err != nil {
		return 0, 0, err
	}
	var s C.double
	var n C.int64_t
	err = m.with(func(h *C.dt_model) error {
		return cerr(C.dt_model_eval(h, i32(b.X), i32(b.Y), C.int64_t(b.B), C.int64_t(b.T), &s, &n))
	})
	if err != nil {
		return 0, 0, fmt.Errorf("eval: %w", err)
	}
	return float64(s), int(n), nil
}

// Logits returns the logits for the inputs of b (targets unused): [B,T,V],
// or [B,V] for the last position of each sequence when lastOnly is set.
func (m *Model) Logits(b Batch, lastOnly bool) ([]float32, error) {
	if err := b.check(m.cfg, false); err != nil {
		return nil, err
	}
	n := b.B * m.cfg.VocabSize
	if !lastOnly {
		n *= b.T
	}
	out := make([]float32, n)
	last := C.int32_t(0)
	if lastOnly {
		last = 1
	}
	err := m.with(func(h *C.dt_model) error {
		return cerr(C.dt_model_logits(h, i32(b.X), C.int64_t(b.B), C.int64_t(b.T), last, f32(out), C.int64_t(len(out))))
	})
	if err != nil {
		return nil, fmt.Errorf("logits: %w", err)
	}
	return out, nil
}

// firstNonFinite returns the index of the first NaN or Inf, or -1.
func firstNonFinite(v []float32) int {
	for i, x := range v {
		if x-x != 0 { // NaN and ±Inf, without a call per element
			return i
		}
	}
	return -1
}
