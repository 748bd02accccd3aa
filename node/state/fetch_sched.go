package state

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Backoff after a refusal or failure, so a busy donor is not hammered.
const (
	busyFirst = 10 * time.Millisecond
	busyMax   = time.Second
	failPause = 50 * time.Millisecond
)

// download runs PerDonor workers per live donor until every chunk is in,
// no donor is left, or ctx ends.
func (f *fetch) download(ctx context.Context) error {
	f.mu.Lock()
	f.avoid = make([]peer.ID, f.n)
	f.pending = f.pending[:0]
	f.doneCount = 0
	for i, ok := range f.done {
		if ok {
			f.doneCount++
		} else {
			f.pending = append(f.pending, i)
		}
	}
	if f.doneCount == f.n {
		f.mu.Unlock()
		return nil
	}
	if f.alive == 0 {
		defer f.mu.Unlock()
		return f.reportLocked()
	}
	live := slices.DeleteFunc(slices.Clone(f.donors), func(d *donorState) bool { return d.dropped != "" })
	f.mu.Unlock()

	wctx, stop := context.WithCancel(ctx)
	defer stop()
	f.mu.Lock()
	f.stop = stop
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, d := range live {
		for range f.opts.PerDonor {
			wg.Go(func() { f.work(wctx, d) })
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w after %d of %d bytes", err, f.heldNow(), f.want.Size)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.doneCount < f.n {
		return f.reportLocked()
	}
	return nil
}

// work fetches chunks from donor d, one at a time, until next says stop.
func (f *fetch) work(ctx context.Context, d *donorState) {
	for {
		i, ok := f.next(ctx, d)
		if !ok {
			return
		}
		err := f.getChunk(ctx, d.id, i)
		if ctx.Err() != nil {
			f.requeue(i) // leaves the chunk to a resumed Fetch
			return
		}
		wait := f.finish(d, i, err)
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// next takes a pending chunk for d, preferring not to give a chunk back
// to the donor that just failed it, and waits while there is none. It
// returns false once d is dropped, every chunk is in, or ctx ends.
func (f *fetch) next(ctx context.Context, d *donorState) (int, bool) {
	for {
		f.mu.Lock()
		if d.dropped != "" || f.doneCount == f.n || f.alive == 0 {
			f.mu.Unlock()
			return 0, false
		}
		for k, i := range f.pending {
			if f.avoid[i] != d.id || f.alive == 1 {
				f.pending = slices.Delete(f.pending, k, k+1)
				f.mu.Unlock()
				return i, true
			}
		}
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, false
		}
	}
}

// finish records the outcome of d's request for chunk i and returns how
// long d's worker should pause.
func (f *fetch) finish(d *donorState, i int, err error) time.Duration {
	f.mu.Lock()
	if err == nil {
		off, end := f.chunkRange(i)
		f.done[i] = true
		f.doneCount++
		d.bytes += int64(end - off)
		d.busy = 0
		f.held += int64(end - off)
		held := f.held
		if f.doneCount == f.n {
			f.stop()
		}
		f.signalLocked()
		f.mu.Unlock()
		if f.opts.Progress != nil {
			f.opts.Progress(held, f.want.Size)
		}
		return 0
	}
	defer f.mu.Unlock()
	f.retries++
	f.pending = slices.Insert(f.pending, 0, i) // soonest, so the tail does not wait on it
	if !errors.Is(err, ErrBusy) {
		f.avoid[i] = d.id
	}
	f.log.Debug().Err(err).Str("peer", d.id.String()).Int("chunk", i).Msg("state chunk failed")
	wait := f.failLocked(d, err)
	f.signalLocked()
	return wait
}

// requeue puts chunk i back without blaming anyone.
func (f *fetch) requeue(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = append(f.pending, i)
}

// fail records a failed request outside the download (the manifest).
func (f *fetch) fail(d *donorState, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retries++
	f.failLocked(d, err)
}

// failLocked counts err against d, drops d when it has had enough, and
// returns how long d's worker should pause.
func (f *fetch) failLocked(d *donorState, err error) time.Duration {
	d.lastErr = err
	switch {
	case errors.Is(err, ErrBusy):
		d.busy++
		if d.busy >= f.opts.MaxBusy {
			f.dropLocked(d, fmt.Sprintf("busy %d times in a row", d.busy))
		}
		wait := min(busyFirst<<min(d.busy, 10), busyMax)
		return wait/2 + rand.N(wait/2+1)
	case errors.Is(err, ErrNotFound):
		f.dropLocked(d, "does not have the state (not found)")
	case errors.Is(err, errCorrupt):
		f.dropLocked(d, fmt.Sprintf("served corrupt bytes: %v", err))
	default:
		d.failures++
		if d.failures >= f.opts.MaxFailures {
			f.dropLocked(d, fmt.Sprintf("dropped after %d failures, last: %v", d.failures, err))
		}
		return failPause
	}
	return 0
}

// dropLocked stops using d; the why goes into stats and errors.
func (f *fetch) dropLocked(d *donorState, why string) {
	if d.dropped != "" {
		return
	}
	d.dropped = why
	f.alive--
	f.log.Warn().Str("peer", d.id.String()).Int64("bytes", d.bytes).Str("why", why).Msg("state donor dropped")
	if f.alive == 0 && f.stop != nil {
		f.stop()
	}
	f.signalLocked()
}

func (f *fetch) signalLocked() {
	close(f.wake)
	f.wake = make(chan struct{})
}

func (f *fetch) heldNow() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}
