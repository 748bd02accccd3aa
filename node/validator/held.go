package validator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/state"
	"github.com/dtrain-dev/dtrain/node/train"
)

// EpochState is what a work check needs of the swarm's state at the start
// of an epoch.
type EpochState struct {
	// Start is θ, the parameters the epoch's training started from.
	Start []float32
	// PrevMean is the averaged pseudo-gradient that moved the swarm from
	// the previous epoch's state to Start; nil when unknown.
	PrevMean []float32
	// Step is the optimizer steps the run had taken at the epoch's start:
	// its inner steps' learning rates follow the schedule from there.
	Step int
}

// StateSource gives a work check the swarm's state of an epoch.
type StateSource interface {
	// EpochState waits, until ctx ends, for the state of epoch e and
	// returns it, or ErrNoState when it is not held.
	EpochState(ctx context.Context, e uint64) (EpochState, error)
}

// ErrNoState reports an epoch whose state the validator does not hold.
var ErrNoState = errors.New("the epoch's state is not held")

// holdTimeout bounds one load of a state held for audits, as a miner's
// load is bounded.
const holdTimeout = 5 * time.Minute

// holder keeps the swarm's diloco states the validator audits against:
// when the validator's epoch machine moves to a state (epoch e, hash H),
// it loads that state from the peers that hold it, as a miner loads one
// (node/state Load), in the background, while the validator goes on
// following the state by hash. It keeps the states of the last two epochs
// it moved to, so e's audits, which run after e's round, find θ_e while
// the load of e+1 runs. When e's load ends and e−1's state is held, e's
// previous average follows from the outer momenta of both (prevMean); a
// validator that joined at e, or whose e−1 load failed, audits e without
// it. Memory: per kept epoch its parameters, outer momentum and previous
// average, 12 bytes per parameter, plus the loads in flight (at most two,
// each the blob and its decoding, 16 bytes per parameter).
type holder struct {
	node  netx.Host
	run   string
	numel int64
	outer train.OuterNesterov
	log   func(e uint64, err error, took time.Duration)

	mu   sync.Mutex
	held map[uint64]*heldState
}

// heldState is one epoch's state, loaded or loading.
type heldState struct {
	hash   [32]byte
	ready  chan struct{} // closed once snap or err is set
	cancel context.CancelFunc
	snap   state.Snapshot
	err    error

	prevMean []float32 // derived from the previous epoch's state and this one, or nil
}

// hold starts loading epoch e's state of hash from donors unless it is
// held (or loading) already, and forgets the states the audits no longer
// need: those before e−1, and any after e (the validator moved back to
// another lineage). The load runs in a goroutine counted by wg that ends
// with ctx.
func (h *holder) hold(ctx context.Context, wg *sync.WaitGroup, e uint64, hash [32]byte, donors []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held == nil {
		h.held = map[uint64]*heldState{}
	}
	if hs := h.held[e]; hs != nil && hs.hash == hash {
		return
	}
	for k, hs := range h.held {
		if k == e || k > e || k+1 < e {
			hs.cancel()
			delete(h.held, k)
		}
	}
	lctx, cancel := context.WithTimeout(ctx, holdTimeout)
	hs := &heldState{hash: hash, ready: make(chan struct{}), cancel: cancel}
	h.held[e] = hs
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		t0 := time.Now()
		s, _, _, err := state.Load(lctx, h.node, h.run, e, hash, donors, state.DiLoCo, h.numel, state.FetchOptions{})
		if err != nil {
			err = fmt.Errorf("load the state of epoch %d for audits from %d peers: %w", e, len(donors), err)
		}
		// The blob is dropped here; the audits need the decoded values.
		hs.snap, hs.err = state.Snapshot{Mode: state.DiLoCo, Epoch: s.Epoch, Step: s.Step, Params: s.Params, Momentum: s.Momentum}, err
		if err == nil && e > 0 {
			// The previous average needs e−1's state, which the next
			// hold may forget before e's audits run: derive it now.
			h.mu.Lock()
			prev := h.held[e-1]
			h.mu.Unlock()
			if prev != nil && prev.loaded() {
				hs.prevMean = h.prevMean(prev.snap, hs.snap)
			}
		}
		close(hs.ready)
		if h.log != nil && ctx.Err() == nil {
			h.log(e, err, time.Since(t0))
		}
	}()
}

// Newest returns the newest loaded state whose epoch want takes, with
// its epoch and hash.
func (h *holder) Newest(want func(e uint64) bool) (uint64, state.Snapshot, [32]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var best *heldState
	var at uint64
	for e, hs := range h.held {
		if (best == nil || e > at) && want(e) && hs.loaded() {
			best, at = hs, e
		}
	}
	if best == nil {
		return 0, state.Snapshot{}, [32]byte{}, false
	}
	return at, best.snap, best.hash, true
}

// EpochState implements StateSource.
func (h *holder) EpochState(ctx context.Context, e uint64) (EpochState, error) {
	h.mu.Lock()
	hs := h.held[e]
	h.mu.Unlock()
	if hs == nil {
		return EpochState{}, ErrNoState
	}
	if err := hs.wait(ctx); err != nil {
		return EpochState{}, err
	}
	return EpochState{Start: hs.snap.Params, PrevMean: hs.prevMean, Step: hs.snap.Step}, nil
}

// loaded reports whether the load has ended well.
func (hs *heldState) loaded() bool {
	select {
	case <-hs.ready:
		return hs.err == nil
	default:
		return false
	}
}

// wait waits for the load; its error, or ctx's.
func (hs *heldState) wait(ctx context.Context) error {
	select {
	case <-hs.ready:
		return hs.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// prevMean recovers the average Δ that took the swarm from state a
// (epoch e−1) to b (epoch e) from their outer momenta: the outer step
// (node/train OuterNesterov) sets v_b = μ·v_a + Δ, so Δ = v_b − μ·v_a. It
// checks that the same step also gives b's parameters from a's, within
// float32 rounding, and returns nil when it does not (b is not a's
// successor: the swarm changed lineage between them) or when a's step
// count says so.
func (h *holder) prevMean(a, b state.Snapshot) []float32 {
	if b.Step < a.Step || len(a.Params) != len(b.Params) || len(a.Momentum) != len(a.Params) || len(b.Momentum) != len(b.Params) {
		return nil
	}
	mu, lr := float32(h.outer.Momentum), float32(h.outer.LR)
	d := make([]float32, len(b.Params))
	for j := range d {
		d[j] = b.Momentum[j] - float32(mu*a.Momentum[j])
		// θ_b = θ_a − η(Δ + μ·v_b). The recovered Δ is off by about one
		// rounding of v_b, so θ_b is matched to a few roundings of the
		// values it is made of; another lineage misses by a whole step.
		want := a.Params[j] - float32(lr*(d[j]+float32(mu*b.Momentum[j])))
		scale := math.Abs(float64(a.Params[j])) + float64(lr)*(math.Abs(float64(d[j]))+2*math.Abs(float64(b.Momentum[j])))
		if math.Abs(float64(want-b.Params[j])) > 1e-5*scale+1e-30 {
			return nil
		}
	}
	return d
}
