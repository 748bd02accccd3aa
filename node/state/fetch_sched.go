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
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	f.mu.Lock()
	f.stop = stop
	f.avoid = make([]peer.ID, f.n)
	f.attempts = map[int][]*attempt{}
	f.pending = f.pending[:0]
	f.doneCount = 0
	for i, ok := range f.done {
		if ok {
			f.doneCount++
		} else {
			f.pending = append(f.pending, i)
		}
	}
	f.resumed = f.held
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
	scratch := make([]byte, f.chunk)
	for {
		i, actx, ok := f.next(ctx, d)
		if !ok {
			return
		}
		data, err := f.getChunk(actx, d.id, i, scratch)
		if ctx.Err() != nil {
			return // the download is over; done[] says what a resume needs
		}
		wait := f.finish(d, i, data, err)
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

// next takes a chunk for d and registers the attempt. It prefers pending
// chunks, not giving one back to the donor that just failed it; with none
// pending it duplicates a chunk another donor is fetching late, so the
// last chunks do not wait on a slow or dead donor (BitTorrent's end game).
// It waits while there is nothing to take, and returns false once d is
// dropped, every chunk is in, or ctx ends.
func (f *fetch) next(ctx context.Context, d *donorState) (int, context.Context, bool) {
	for {
		f.mu.Lock()
		if d.dropped != "" || f.doneCount == f.n || f.alive == 0 {
			f.mu.Unlock()
			return 0, nil, false
		}
		now := time.Now()
		i, retry := f.pickLocked(d, now)
		if i >= 0 {
			actx, cancel := context.WithCancel(ctx)
			f.attempts[i] = append(f.attempts[i], &attempt{d: d, cancel: cancel, started: now})
			f.mu.Unlock()
			return i, actx, true
		}
		wake := f.wake
		f.mu.Unlock()
		var late <-chan time.Time
		if retry > 0 {
			late = time.After(retry) // its timer is collected once it fires or is dropped
		}
		select {
		case <-wake:
		case <-late:
		case <-ctx.Done():
			return 0, nil, false
		}
	}
}

// pickLocked chooses d's next chunk and takes it off pending, or returns
// -1 and, when a chunk will be late, how long until the first is.
//
// A chunk another donor is fetching is duplicated only once that attempt
// has run lateFactor times as long as chunks take on average: on a shared
// downlink every byte of a duplicate is taken from the chunks still
// coming, so duplicating every last chunk at once (as it did) cost 3 donors
// 3% of a 200 Mbit/s link against 1 donor (bench state). Before any chunk
// has arrived there is no average, and the duplicate is made at once.
func (f *fetch) pickLocked(d *donorState, now time.Time) (int, time.Duration) {
	for k, i := range f.pending {
		if f.avoid[i] != d.id || f.alive == 1 {
			f.pending = slices.Delete(f.pending, k, k+1)
			return i, 0
		}
	}
	if len(f.pending) > 0 {
		return -1, 0
	}
	var lateAfter, lateIn time.Duration // 0 before any chunk arrived: duplicate at once
	if f.gotChunks > 0 {
		lateAfter = lateFactor * f.chunkTime / time.Duration(f.gotChunks)
	}
	for i, as := range f.attempts {
		if len(as) != 1 || as[0].d == d {
			continue
		}
		wait := lateAfter - now.Sub(as[0].started)
		if wait <= 0 {
			return i, 0
		}
		if lateIn == 0 || wait < lateIn {
			lateIn = wait
		}
	}
	return -1, lateIn
}

// lateFactor is how many times the average chunk time an attempt runs
// before another donor duplicates it.
const lateFactor = 2

// finish records the outcome of d's attempt at chunk i, copies a good
// chunk into place, and returns how long d's worker should pause.
func (f *fetch) finish(d *donorState, i int, data []byte, err error) time.Duration {
	f.mu.Lock()
	rest := f.attempts[i][:0]
	for _, a := range f.attempts[i] {
		if a.d == d {
			a.cancel()
			if err == nil && !f.done[i] {
				f.chunkTime += time.Since(a.started)
				f.gotChunks++
			}
		} else {
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		delete(f.attempts, i)
	} else {
		f.attempts[i] = rest
	}
	if f.done[i] {
		f.mu.Unlock()
		return 0 // another donor won this chunk; this attempt was cut short
	}
	if err == nil {
		held := f.completeLocked(d, i, data)
		f.mu.Unlock()
		if f.opts.Progress != nil {
			f.opts.Progress(held, f.want.Size)
		}
		return 0
	}
	defer f.mu.Unlock()
	f.retries++
	if len(rest) == 0 {
		f.pending = slices.Insert(f.pending, 0, i) // soonest, so the tail does not wait on it
	}
	if !errors.Is(err, ErrBusy) {
		f.avoid[i] = d.id
	}
	f.log.Debug().Err(err).Str("peer", d.id.String()).Int("chunk", i).Msg("state chunk failed")
	wait := f.failLocked(d, err)
	f.signalLocked()
	return wait
}

// completeLocked puts chunk i's bytes in place, cancels any other attempt
// at it, and returns the bytes now held.
func (f *fetch) completeLocked(d *donorState, i int, data []byte) int64 {
	off, _ := f.chunkRange(i)
	copy(f.buf[off:], data)
	f.done[i] = true
	f.doneCount++
	d.bytes += int64(len(data))
	d.busy = 0
	f.held += int64(len(data))
	for _, a := range f.attempts[i] {
		a.cancel()
	}
	if f.doneCount == f.n {
		f.stop()
	}
	f.signalLocked()
	return f.held
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
