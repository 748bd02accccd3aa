package netx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// DefaultStreamTimeout bounds one frame read or write when the caller's
// context has no earlier deadline, so a peer that vanishes without closing
// turns into an error instead of a hang.
const DefaultStreamTimeout = 30 * time.Second

// FramedStream reads and writes frames on one libp2p stream, each call
// under a deadline. A frame that breaks the protocol (over the limit, or
// cut short) resets this stream only: the connection and its other streams
// carry on. A FramedStream is not safe for concurrent reads, nor for
// concurrent writes; one reader and one writer may run at once.
type FramedStream struct {
	s       network.Stream
	max     int
	timeout time.Duration
	buf     []byte
}

// NewFramedStream wraps s. max limits every frame in both directions
// (DefaultMaxFrame if max <= 0); timeout bounds each call whose context has
// no earlier deadline (DefaultStreamTimeout if timeout <= 0).
func NewFramedStream(s network.Stream, max int, timeout time.Duration) *FramedStream {
	if timeout <= 0 {
		timeout = DefaultStreamTimeout
	}
	return &FramedStream{s: s, max: limit(max), timeout: timeout}
}

// Stream returns the wrapped libp2p stream.
func (f *FramedStream) Stream() network.Stream { return f.s }

// ReadFrame reads the next frame. The result aliases a buffer the stream
// reuses: it is valid until the next ReadFrame or ReadMessage. A clean end
// of stream between frames returns an error wrapping io.EOF; an oversized
// or truncated frame, or a read that misses its deadline, resets the
// stream and returns an error wrapping ErrFrameTooLarge, ErrTruncatedFrame
// or the deadline error.
func (f *FramedStream) ReadFrame(ctx context.Context) ([]byte, error) {
	stop, err := f.arm(ctx, f.s.SetReadDeadline)
	if err != nil {
		return nil, f.wrap("read frame", err)
	}
	p, err := ReadFrame(f.s, f.buf, f.max)
	stop()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			_ = f.s.Reset()
		}
		return nil, f.wrap("read frame", ctxErr(ctx, err))
	}
	if cap(p) <= 2*DefaultMaxFrame {
		f.buf = p[:0] // keep for the next frame, unless it is unusually large
	}
	return p, nil
}

// WriteFrame writes p as one frame. An oversized p is refused without
// writing anything and without resetting the stream; a write that fails or
// misses its deadline resets the stream, since the peer may hold part of a
// frame.
func (f *FramedStream) WriteFrame(ctx context.Context, p []byte) error {
	return f.write(ctx, func() error { return WriteFrame(f.s, p, f.max) })
}

// ReadMessage reads the next frame as a Message. Body aliases the stream's
// buffer like ReadFrame's result. A frame too short for a message header
// resets the stream.
func (f *FramedStream) ReadMessage(ctx context.Context) (Message, error) {
	p, err := f.ReadFrame(ctx)
	if err != nil {
		return Message{}, err
	}
	m, err := ParseMessage(p)
	if err != nil {
		_ = f.s.Reset()
		return Message{}, f.wrap("read message", err)
	}
	return m, nil
}

// WriteMessage writes m as one frame, like WriteFrame.
func (f *FramedStream) WriteMessage(ctx context.Context, m Message) error {
	return f.write(ctx, func() error { return WriteMessage(f.s, m, f.max) })
}

// CloseWrite tells the peer no more frames follow; reads still work.
func (f *FramedStream) CloseWrite() error { return f.s.CloseWrite() }

// Close closes the stream in both directions.
func (f *FramedStream) Close() error { return f.s.Close() }

// Reset aborts the stream in both directions.
func (f *FramedStream) Reset() error { return f.s.Reset() }

func (f *FramedStream) write(ctx context.Context, do func() error) error {
	stop, err := f.arm(ctx, f.s.SetWriteDeadline)
	if err != nil {
		return f.wrap("write frame", err)
	}
	err = do()
	stop()
	if err != nil {
		if !errors.Is(err, ErrFrameTooLarge) {
			_ = f.s.Reset()
		}
		return f.wrap("write frame", ctxErr(ctx, err))
	}
	return nil
}

// arm sets a deadline from ctx (or the stream's timeout, whichever comes
// first) through set, and makes ctx's cancellation expire it at once. The
// returned stop must be called when the I/O is done.
func (f *FramedStream) arm(ctx context.Context, set func(time.Time) error) (stop func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dl := time.Now().Add(f.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	if err := set(dl); err != nil {
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	// A past deadline unblocks the pending read or write; no goroutine
	// outlives the call because AfterFunc's is stopped before we return.
	// Waiting for a started AfterFunc keeps its past deadline from landing
	// on the next call.
	done := make(chan struct{})
	cancel := context.AfterFunc(ctx, func() {
		defer close(done)
		_ = set(time.Unix(1, 0))
	})
	return func() {
		if !cancel() {
			<-done
		}
	}, nil
}

// ctxErr prefers the context's error when it ended the I/O, so callers can
// test errors.Is(err, context.Canceled/DeadlineExceeded).
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return err
}

func (f *FramedStream) wrap(op string, err error) error {
	return fmt.Errorf("%s (peer %s, protocol %s): %w", op, f.s.Conn().RemotePeer(), f.s.Protocol(), err)
}
