package p2p

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/allreduce"
)

// peerWriter sends one member's messages in order on one stream of its own,
// so a slow member holds back only its own queue. The queue is bounded by
// what the round produces for that member (the round emits each part once),
// and the writer drops it when the round ends.
type peerWriter struct {
	t      *transport
	to     int
	wake   chan struct{}      // a message was queued, or finish was called
	ctx    context.Context    // ends the writer's dials and resets its stream
	cancel context.CancelFunc // abandon

	mu         sync.Mutex
	queue      []allreduce.Msg
	busy       bool          // run holds a message it has not yet sent or dropped
	progressAt time.Time     // last write, or when an idle writer was given work
	finished   bool          // no more messages; exit once the queue is empty
	exited     chan struct{} // closed when run returns
}

func (w *peerWriter) push(m allreduce.Msg) {
	w.mu.Lock()
	if !w.busy && len(w.queue) == 0 {
		w.progressAt = time.Now()
	}
	w.queue = append(w.queue, m)
	w.mu.Unlock()
	w.signal()
}

func (w *peerWriter) finish() {
	w.mu.Lock()
	w.finished = true
	w.mu.Unlock()
	w.signal()
}

// abandon drops what is queued and ends the writer now, mid-dial or
// mid-write.
func (w *peerWriter) abandon() {
	w.mu.Lock()
	w.finished, w.queue = true, nil
	w.mu.Unlock()
	w.cancel()
}

// stalledFor is how long the writer has had something to send and written
// nothing; 0 while it is idle.
func (w *peerWriter) stalledFor() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.busy && len(w.queue) == 0 {
		return 0
	}
	return time.Since(w.progressAt)
}

func (w *peerWriter) wrote() {
	w.mu.Lock()
	w.progressAt = time.Now()
	w.mu.Unlock()
}

func (w *peerWriter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *peerWriter) isFinished() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.finished
}

// next takes the queue's head; ok is false once finished and empty.
func (w *peerWriter) next() (m allreduce.Msg, ok, wait bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.busy = len(w.queue) > 0
	if w.busy {
		m, w.queue[0] = w.queue[0], nil
		w.queue = w.queue[1:]
		return m, true, false
	}
	return nil, false, !w.finished
}

func (w *peerWriter) run() {
	defer w.t.wg.Done()
	defer close(w.exited)
	t := w.t
	log := t.log.With().Int("member", w.to).Str("peer", t.peers[w.to].String()).Logger()
	var s network.Stream
	var b []byte // each message's encoding, reused: a stream's Write keeps no reference
	stopReset := func() bool { return false }
	defer func() {
		if s != nil && stopReset() {
			_ = s.Close()
		}
	}()
	for {
		m, ok, wait := w.next()
		if !ok {
			if !wait {
				return
			}
			select {
			case <-w.wake:
				continue
			case <-w.ctx.Done():
				return
			}
		}
		var err error
		if b, err = allreduce.AppendMsg(b[:0], m); err != nil {
			log.Warn().Err(err).Msg("round message not encodable")
			continue
		}
		if s == nil {
			if s = w.open(); s == nil {
				return // the round ended before the member could be reached
			}
			opened := s
			stopReset = context.AfterFunc(w.ctx, func() { _ = opened.Reset() })
		}
		_ = s.SetWriteDeadline(t.deadline)
		pace(w.ctx, t.uplink, netx.FrameHeaderLen+len(b))
		if err := netx.WriteFrame(s, b, t.maxFrame); err != nil {
			// The message is lost; the round's timeouts decide what that
			// means. Later messages try a new stream.
			log.Debug().Err(err).Int("bytes", len(b)).Msg("round message not sent")
			stopReset()
			_ = s.Reset()
			s = nil
			if w.isFinished() {
				return // the round is over: no retries for what is left
			}
			continue
		}
		t.sent.Add(int64(netx.FrameHeaderLen + len(b)))
		w.wrote()
	}
}

// open opens a stream to the member, retrying while it has not yet
// registered the round's handler, until the round ends or the writer is
// abandoned.
func (w *peerWriter) open() network.Stream {
	t := w.t
	backoff := minReopen
	warned := false
	for {
		// NewStream below waits for a direct connection (hole punching,
		// a dial back) and never sends over a limited relay: its limit
		// would cut the round halfway.
		if !warned {
			if l, only := netx.LimitedOnly(t.h, t.peers[w.to]); only {
				warned = true
				t.log.Warn().Stringer("peer", t.peers[w.to]).Int("member", w.to).Str("relay_limit", l.String()).
					Msg("member reachable only through a relay with limits: no round data goes to it until a direct connection appears " +
						"(an open port, hole punching, or a relay without limits)")
			}
		}
		s, err := t.h.NewStream(w.ctx, t.peers[w.to], t.proto)
		if err == nil {
			return s
		}
		t.log.Debug().Err(err).Int("member", w.to).Msg("open round stream")
		if w.isFinished() {
			return nil // the round is over: one try only
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, maxReopen)
		case <-w.ctx.Done():
			return nil
		}
	}
}
