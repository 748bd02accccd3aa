package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/allreduce"
)

// inboxSize bounds decoded messages waiting for the round goroutine; a full
// inbox holds back the streams' readers, which is QUIC flow control's job.
const inboxSize = 64

// Attempts to open a stream to a member that has not registered the round's
// handler yet (members start a round milliseconds apart), or whose stream
// just failed, are spaced from minReopen, doubling up to maxReopen.
const (
	minReopen = 5 * time.Millisecond
	maxReopen = 100 * time.Millisecond
)

// inbound is one decoded message from a member, and the frame buffer its
// payload aliases, which the round goroutine releases after Receive.
type inbound struct {
	from  int
	msg   allreduce.Msg
	frame *[]byte
}

// frames recycles frame buffers across readers and rounds: Round.Receive
// keeps no reference to a message's payload, so a frame's buffer serves
// the next frame once its message has been received. Without it every
// part costs a fresh zeroed allocation the size of a frame, which the
// garbage collector returns to the kernel and the next round faults in
// again.
var frames sync.Pool

// frameBuffer returns a buffer with room for n bytes.
func frameBuffer(n int) *[]byte {
	if b, ok := frames.Get().(*[]byte); ok && cap(*b) >= n {
		return b
	}
	b := make([]byte, 0, n)
	return &b
}

func releaseFrame(b *[]byte) {
	if b != nil {
		frames.Put(b)
	}
}

// transport is the I/O around one Round: streams, queues and goroutines.
type transport struct {
	h        netx.Host
	proto    protocol.ID
	peers    []peer.ID
	self     int
	rewrite  func(allreduce.Outgoing) allreduce.Outgoing
	log      zerolog.Logger
	maxFrame int
	deadline time.Time // the round's end: no I/O waits past it
	inbox    chan inbound

	ctx    context.Context // ends all I/O
	cancel context.CancelFunc
	wg     sync.WaitGroup // readers and writers

	mu      sync.Mutex
	closed  bool
	readers map[network.Stream]bool
	writers map[int]*peerWriter

	sent, received atomic.Int64 // frame bytes, length prefixes included

	uplink *rate.Limiter // WithUplinkLimit; nil: none
}

// Traffic is what one round moved over its streams: the bytes of the
// frames (length prefix included) this peer wrote whole and read whole.
type Traffic struct {
	Sent, Received int64
}

// RunRound drives r over libp2p streams on proto until it is done or ctx
// ends, and returns its result. peers[i] is member i of r's group; the
// member whose ID is h.ID() is this peer. Every tick the round sees the
// clock, so its part and round timeouts fire within a tick of their time.
// Logs go to zerolog.Ctx(ctx).
func RunRound(ctx context.Context, h netx.Host, proto protocol.ID, peers []peer.ID, r *allreduce.Round, tick time.Duration, opts ...Option) (allreduce.Result, error) {
	res, _, err := RunRoundTraffic(ctx, h, proto, peers, r, tick, opts...)
	return res, err
}

// RunRoundTraffic is RunRound that also returns the round's traffic, which
// it counts whether or not the round succeeds.
func RunRoundTraffic(ctx context.Context, h netx.Host, proto protocol.ID, peers []peer.ID, r *allreduce.Round, tick time.Duration, opts ...Option) (_ allreduce.Result, traffic Traffic, _ error) {
	return RunRoundRewriting(ctx, h, proto, peers, r, tick, nil, opts...)
}

// RunRoundRewriting is RunRoundTraffic with every message this member
// sends passed through rewrite first (nil: none): how node/miner's cheat
// facility plays a dishonest member for tests and demos. An honest miner
// never rewrites.
func RunRoundRewriting(ctx context.Context, h netx.Host, proto protocol.ID, peers []peer.ID, r *allreduce.Round, tick time.Duration, rewrite func(allreduce.Outgoing) allreduce.Outgoing, opts ...Option) (_ allreduce.Result, traffic Traffic, _ error) {
	cfg := r.Config()
	if len(peers) != len(cfg.Group.Members) {
		return allreduce.Result{}, Traffic{}, fmt.Errorf("run round: %d peers for a group of %d", len(peers), len(cfg.Group.Members))
	}
	if peers[cfg.Self] != h.ID() {
		return allreduce.Result{}, Traffic{}, fmt.Errorf("run round: member %d is %s, this host is %s", cfg.Self, peers[cfg.Self], h.ID())
	}
	if tick <= 0 {
		tick = 10 * time.Millisecond
	}
	start := time.Now()
	t := &transport{
		h: h, proto: proto, peers: peers, self: cfg.Self, rewrite: rewrite,
		log:      zerolog.Ctx(ctx).With().Str("protocol", string(proto)).Logger(),
		maxFrame: allreduce.MaxFrame(cfg),
		deadline: start.Add(cfg.RoundTimeout),
		inbox:    make(chan inbound, inboxSize),
		readers:  map[network.Stream]bool{},
		writers:  map[int]*peerWriter{},
	}
	for _, o := range opts {
		o(t)
	}
	t.ctx, t.cancel = context.WithDeadline(ctx, t.deadline)
	h.SetStreamHandler(proto, t.handle)
	// Deferred before close, so it runs after it: every reader and writer
	// has stopped counting.
	defer func() { traffic = Traffic{Sent: t.sent.Load(), Received: t.received.Load()} }()
	defer t.close()

	now := func() time.Duration { return time.Since(start) }
	t.send(r.Start(now()))
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for !r.Done() {
		select {
		case in := <-t.inbox:
			out, err := r.Receive(now(), in.from, in.msg)
			releaseFrame(in.frame)
			switch {
			case errors.Is(err, allreduce.ErrCommitMismatch):
				t.log.Warn().Err(err).Int("member", in.from).Str("peer", t.peers[in.from].String()).Msg("round part does not match its sender's commitment")
			case err != nil:
				t.log.Debug().Err(err).Int("member", in.from).Msg("round rejected message")
			}
			t.send(out)
		case <-ticker.C:
			t.send(r.Tick(now()))
		case <-ctx.Done():
			return allreduce.Result{}, traffic, fmt.Errorf("run round: %w", ctx.Err())
		}
	}
	t.drain(cfg.Slack())
	res, err := r.Result()
	return res, traffic, err
}

// send queues each message for its member's writer.
func (t *transport) send(out []allreduce.Outgoing) {
	for _, o := range out {
		if t.rewrite != nil {
			o = t.rewrite(o)
		}
		if o.To < 0 || o.To >= len(t.peers) || o.To == t.self {
			t.log.Warn().Int("member", o.To).Msg("round addressed a message to no other member")
			continue
		}
		t.writer(o.To).push(o.Msg)
	}
}

// writer returns member i's writer, starting it on first use.
func (t *transport) writer(i int) *peerWriter {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.writers[i]
	if w == nil {
		w = &peerWriter{t: t, to: i, wake: make(chan struct{}, 1), exited: make(chan struct{})}
		w.ctx, w.cancel = context.WithCancel(t.ctx)
		t.writers[i] = w
		t.wg.Add(1)
		go w.run()
	}
	return w
}

// handle reads one inbound stream: frames from a known member, decoded and
// passed to the round goroutine. Streams from peers outside the group are
// reset.
func (t *transport) handle(s network.Stream) {
	from := -1
	for i, p := range t.peers {
		if p == s.Conn().RemotePeer() && i != t.self {
			from = i
		}
	}
	t.mu.Lock()
	if t.closed || from < 0 {
		t.mu.Unlock()
		_ = s.Reset()
		return
	}
	t.readers[s] = true
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		delete(t.readers, s)
		t.mu.Unlock()
	}()
	t.read(s, from)
}

func (t *transport) read(s network.Stream, from int) {
	_ = s.SetReadDeadline(t.deadline)
	log := t.log.With().Int("member", from).Str("peer", t.peers[from].String()).Logger()
	for {
		// A buffer per frame: a part's payload aliases it until the round
		// goroutine has received the message and releases it. Every
		// buffer holds a whole frame of the round (MaxFrame), so none
		// grows while reading.
		frame := frameBuffer(t.maxFrame)
		b, err := netx.ReadFrame(s, *frame, t.maxFrame)
		if err == nil {
			t.received.Add(int64(netx.FrameHeaderLen + len(b)))
		}
		if err != nil {
			releaseFrame(frame)
			if !errors.Is(err, context.Canceled) && t.ctx.Err() == nil {
				log.Debug().Err(err).Msg("round stream ended")
			}
			_ = s.Reset()
			return
		}
		m, err := allreduce.DecodeMsg(b, t.maxFrame)
		if err != nil {
			// A message of a type this build does not know (a newer peer)
			// is dropped; the stream's framing is intact, so go on.
			log.Warn().Err(err).Int("bytes", len(b)).Msg("dropped round message")
			releaseFrame(frame)
			continue
		}
		select {
		case t.inbox <- inbound{from: from, msg: m, frame: frame}:
		case <-t.ctx.Done():
			_ = s.Reset()
			return
		}
	}
}

// drain lets the writers send what the finished round still owes the others
// (an owner's all-gather parts), until the queues are empty or the round's
// deadline. A writer that has had something to send and completed no write
// for stall (the round's measure of a stalled member) is abandoned: a dial
// to a dead host, or a write into a connection that has not yet noticed
// that its host is gone, would otherwise hold this member's result for the
// dial timeout, QUIC's idle timeout, or up to the round's deadline.
func (t *transport) drain(stall time.Duration) {
	t.mu.Lock()
	ws := make([]*peerWriter, 0, len(t.writers))
	for _, w := range t.writers {
		ws = append(ws, w)
	}
	t.mu.Unlock()
	for _, w := range ws {
		w.finish()
	}
	for _, w := range ws {
		t.await(w, stall)
	}
}

// await waits for w to exit, abandoning it once it has stalled for stall.
func (t *transport) await(w *peerWriter, stall time.Duration) {
	for w.stalledFor() < stall {
		stuck := time.NewTimer(stall - w.stalledFor())
		select {
		case <-w.exited:
			stuck.Stop()
			return
		case <-t.ctx.Done():
			stuck.Stop()
			return
		case <-stuck.C:
		}
	}
	w.abandon()
	select {
	case <-w.exited:
	case <-t.ctx.Done():
	}
}

// close ends every goroutine and stream of the round and removes its handler.
func (t *transport) close() {
	t.h.RemoveStreamHandler(t.proto)
	t.mu.Lock()
	t.closed = true
	for s := range t.readers {
		_ = s.Reset()
	}
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
}
