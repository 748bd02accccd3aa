package torch

/*
#include <stdlib.h>
#include "dtorch.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"unsafe"
)

// ErrClosed is returned by a Model or Optimizer used after Close.
var ErrClosed = errors.New("torch: use after Close")

// Model is a GPT-2 held by libdtorch. Its memory is released by Close, never
// by a finalizer. Methods are safe to call from several goroutines; calls
// run one at a time.
type Model struct {
	mu     sync.Mutex
	h      *C.dt_model
	cfg    Config
	dev    Device
	layout []Param
	numel  int64
	prec   Precision
}

// NewModel creates a GPT-2 on dev with GPT-2's initialization drawn from
// seed; the same seed gives the same weights on every device.
func NewModel(cfg Config, dev Device, seed uint64) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ready(); err != nil {
		return nil, err
	}
	tanh, _ := cfg.geluTanh()
	cc := C.dt_config{
		n_layer: C.int64_t(cfg.NLayer), n_head: C.int64_t(cfg.NHead), n_embd: C.int64_t(cfg.NEmbd),
		n_positions: C.int64_t(cfg.NPositions), vocab_size: C.int64_t(cfg.VocabSize),
		n_inner: C.int64_t(cfg.Inner()), layer_norm_epsilon: C.double(cfg.LayerNormEpsilon),
		embd_pdrop: C.double(cfg.EmbdPdrop), attn_pdrop: C.double(cfg.AttnPdrop),
		resid_pdrop: C.double(cfg.ResidPdrop), initializer_range: C.double(cfg.InitializerRange),
	}
	if tanh {
		cc.gelu_tanh = 1
	}
	cdev := C.CString(dev.String())
	defer C.free(unsafe.Pointer(cdev))
	var h *C.dt_model
	if err := cerr(C.dt_model_new(&cc, cdev, C.uint64_t(seed), &h)); err != nil {
		return nil, fmt.Errorf("new model: %w", err)
	}
	m := &Model{h: h, cfg: cfg, dev: dev, layout: Layout(cfg), numel: int64(C.dt_model_numel(h)), prec: FP32}
	if err := m.checkLayout(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// checkLayout confirms that libdtorch lays out the flat buffer exactly as
// Layout says, so checkpoints and the all-reduce agree with the model.
func (m *Model) checkLayout() error {
	if n := int(C.dt_model_tensor_count(m.h)); n != len(m.layout) {
		return fmt.Errorf("libdtorch has %d tensors, dtrain expects %d", n, len(m.layout))
	}
	name := make([]byte, 256)
	for i, want := range m.layout {
		var ndim C.int32_t
		var shape [2]C.int64_t
		var off C.int64_t
		if err := cerr(C.dt_model_tensor(m.h, C.int32_t(i), (*C.char)(unsafe.Pointer(&name[0])), C.int32_t(len(name)), &ndim, &shape[0], &off)); err != nil {
			return err
		}
		got := Param{Name: C.GoString((*C.char)(unsafe.Pointer(&name[0]))), Offset: int64(off)}
		for d := 0; d < int(ndim); d++ {
			got.Shape = append(got.Shape, int64(shape[d]))
		}
		if got.Name != want.Name || got.Offset != want.Offset || !slices.Equal(got.Shape, want.Shape) {
			return fmt.Errorf("libdtorch tensor %d is %s %v at %d, dtrain expects %s %v at %d",
				i, got.Name, got.Shape, got.Offset, want.Name, want.Shape, want.Offset)
		}
	}
	if m.numel != NumParams(m.cfg) {
		return fmt.Errorf("libdtorch has %d parameters, dtrain expects %d", m.numel, NumParams(m.cfg))
	}
	return nil
}

// Close frees the model. It is safe to call more than once.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h != nil {
		C.dt_model_free(m.h)
		m.h = nil
	}
	return nil
}

// Config is the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Device is where the model's tensors live.
func (m *Model) Device() Device { return m.dev }

// Layout is the order of tensors in the flat buffers.
func (m *Model) Layout() []Param { return slices.Clone(m.layout) }

// NumParams is the length of the flat parameter and gradient buffers.
func (m *Model) NumParams() int64 { return m.numel }

// with runs f on the live handle, under the model's lock.
func (m *Model) with(f func(h *C.dt_model) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return ErrClosed
	}
	return f(m.h)
}

func (m *Model) checkLen(what string, n int) error {
	if int64(n) != m.numel {
		return fmt.Errorf("%s: buffer has %d values, model has %d", what, n, m.numel)
	}
	return nil
}

// Params copies the flat parameter buffer into dst (len NumParams).
func (m *Model) Params(dst []float32) error {
	if err := m.checkLen("params", len(dst)); err != nil {
		return err
	}
	return m.with(func(h *C.dt_model) error {
		return cerr(C.dt_model_get_params(h, f32(dst), C.int64_t(len(dst))))
	})
}

// SetParams replaces every parameter from src (len NumParams). Values must
// be finite: a NaN or Inf from a peer or a file never reaches the model.
func (m *Model) SetParams(src []float32) error {
	if err := m.checkLen("set params", len(src)); err != nil {
		return err
	}
	if i := firstNonFinite(src); i >= 0 {
		return fmt.Errorf("set params: value %d (%s) is %v", i, m.nameAt(int64(i)), src[i])
	}
	return m.with(func(h *C.dt_model) error {
		return cerr(C.dt_model_set_params(h, f32(src), C.int64_t(len(src))))
	})
}

// Grads copies the flat gradient buffer into dst (len NumParams).
func (m *Model) Grads(dst []float32) error {
	if err := m.checkLen("grads", len(dst)); err != nil {
		return err
	}
	return m.with(func(h *C.dt_model) error {
		return cerr(C.dt_model_get_grads(h, f32(dst), C.int64_t(len(dst))))
	})
}

// SetGrads replaces the flat gradient buffer from src (len NumParams); the
// values must be finite.
func (m *Model) SetGrads(src []float32) error {
	if err := m.checkLen("set grads", len(src)); err != nil {
		return err
	}
	if i := firstNonFinite(src); i >= 0 {
		return fmt.Errorf("set grads: value %d (%s) is %v", i, m.nameAt(int64(i)), src[i])
	}
	return m.with(func(h *C.dt_model) error {
		return cerr(C.dt_model_set_grads(h, f32(src), C.int64_t(len(src))))
	})
}

// ZeroGrad sets every gradient to zero.
func (m *Model) ZeroGrad() error {
	return m.with(func(h *C.dt_model) error { return cerr(C.dt_model_zero_grad(h)) })
}

// SetPrecision picks the dtype of the forward and backward matmuls and
// attention; a new model computes in FP32.
func (m *Model) SetPrecision(p Precision) error {
	if p != FP32 && p != BF16 {
		return fmt.Errorf("precision %q: want fp32 or bf16", p)
	}
	cd := C.CString(p.dtype())
	defer C.free(unsafe.Pointer(cd))
	if err := m.with(func(h *C.dt_model) error { return cerr(C.dt_model_set_compute(h, cd)) }); err != nil {
		return err
	}
	m.mu.Lock()
	m.prec = p
	m.mu.Unlock()
	return nil
}

// SetAttentionBlock sets how many query rows the causal attention computes
// at a time on sequences longer than that (256 by default): it never holds
// more than those rows' scores against the keys before them. A sequence of
// one block, and every sequence with rows 0 or with attention dropout,
// takes the plain form: the whole [T,T] scores at once, kept for backward.
func (m *Model) SetAttentionBlock(rows int) error {
	if rows < 0 {
		return fmt.Errorf("attention block %d: want 0 or more rows", rows)
	}
	return m.with(func(h *C.dt_model) error { return cerr(C.dt_model_set_attention_block(h, C.int64_t(rows))) })
}

// Precision is the dtype the model computes in.
func (m *Model) Precision() Precision {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.prec
}

// SeedDropout reseeds the generator that dropout masks are drawn from.
// Trainers seed it per step from (run seed, step), so a resumed run draws
// the same masks as an uninterrupted one.
func (m *Model) SeedDropout(seed uint64) error {
	return m.with(func(h *C.dt_model) error { return cerr(C.dt_model_seed_dropout(h, C.uint64_t(seed))) })
}

// ClipGradNorm scales the gradient so that its L2 norm is at most maxNorm
// (as torch.nn.utils.clip_grad_norm_) and returns the norm before clipping.
// maxNorm <= 0 only measures.
func (m *Model) ClipGradNorm(maxNorm float64) (float64, error) {
	var norm C.double
	err := m.with(func(h *C.dt_model) error { return cerr(C.dt_model_clip_grad(h, C.double(maxNorm), &norm)) })
	return float64(norm), err
}

// nameAt names the tensor holding flat element i.
func (m *Model) nameAt(i int64) string {
	for k := len(m.layout) - 1; k >= 0; k-- {
		if i >= m.layout[k].Offset {
			return m.layout[k].Name
		}
	}
	return "?"
}
