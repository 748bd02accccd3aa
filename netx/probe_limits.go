package netx

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProbeLimits bounds what a probe server spends on the peers that call it,
// so that no one can use it as a free bandwidth sink or source. A zero
// field limits nothing.
type ProbeLimits struct {
	// MaxBytes is the largest transfer; a larger request is refused.
	MaxBytes int64
	// PeerBytes and TotalBytes are the bytes granted to one peer and to
	// all peers together per Window; a request over either is refused.
	// Granted bytes count whether or not they are then moved.
	// Window must be positive when either is set.
	PeerBytes, TotalBytes int64
	Window                time.Duration
	// Streams and PeerStreams bound the probe streams served at once, in
	// all and per peer; a stream over either is reset at once.
	Streams, PeerStreams int
	// StreamTime is the longest one stream is served, so that idle pings
	// cannot hold a stream slot for good.
	StreamTime time.Duration
}

// maxTrackedPeers bounds the peers a probe server keeps a byte budget for;
// past it (a crowd of fresh identities) new peers are refused until old
// budgets expire.
const maxTrackedPeers = 4096

// errProbeBudget is the refusal of a transfer over a byte budget.
var errProbeBudget = errors.New("probe budget spent, try later")

// ServeProbes serves ping and bandwidth probes on proto within l. Each
// stream ends when the peer closes it, a read or write idles past
// DefaultStreamTimeout, or l.StreamTime has passed.
func ServeProbes(h Host, proto protocol.ID, l ProbeLimits) {
	lim := &probeLimiter{l: l, active: map[peer.ID]int{}, spent: map[peer.ID]*probeBudget{}}
	h.SetStreamHandler(proto, func(s network.Stream) {
		p := s.Conn().RemotePeer()
		if !lim.open(p) {
			_ = s.Reset()
			return
		}
		defer lim.close(p)
		ctx := context.Background()
		if l.StreamTime > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, l.StreamTime)
			defer cancel()
		}
		fs := NewFramedStream(s, probeMaxFrame, DefaultStreamTimeout)
		if err := serveProbes(ctx, fs, func(n int64) error { return lim.admit(time.Now(), p, n) }); err != nil {
			_ = fs.Reset()
			return
		}
		_ = fs.Close()
	})
}

// probeLimiter is one probe server's accounting.
type probeLimiter struct {
	l       ProbeLimits
	mu      sync.Mutex
	streams int
	active  map[peer.ID]int
	spent   map[peer.ID]*probeBudget
	total   probeBudget
}

// probeBudget is the bytes granted in the window that began at start.
type probeBudget struct {
	start time.Time
	bytes int64
}

// take grants n bytes of a budget of max per window if they fit.
func (b *probeBudget) take(now time.Time, window time.Duration, n, max int64) bool {
	if max <= 0 {
		return true
	}
	if now.Sub(b.start) >= window {
		b.start, b.bytes = now, 0
	}
	if b.bytes+n > max {
		return false
	}
	b.bytes += n
	return true
}

func (l *probeLimiter) open(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if (l.l.Streams > 0 && l.streams >= l.l.Streams) || (l.l.PeerStreams > 0 && l.active[p] >= l.l.PeerStreams) {
		return false
	}
	l.streams++
	l.active[p]++
	return true
}

func (l *probeLimiter) close(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.streams--
	if l.active[p]--; l.active[p] <= 0 {
		delete(l.active, p)
	}
}

// admit grants a transfer of n bytes to p, or says why not.
func (l *probeLimiter) admit(now time.Time, p peer.ID, n int64) error {
	lim := l.l
	if n <= 0 || (lim.MaxBytes > 0 && n > lim.MaxBytes) {
		return fmt.Errorf("%d bytes requested, limit %d", n, lim.MaxBytes)
	}
	if lim.PeerBytes <= 0 && lim.TotalBytes <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.spent[p]
	if b == nil {
		if len(l.spent) >= maxTrackedPeers {
			for q, old := range l.spent {
				if now.Sub(old.start) >= lim.Window {
					delete(l.spent, q)
				}
			}
		}
		if len(l.spent) >= maxTrackedPeers {
			return errProbeBudget
		}
		b = &probeBudget{start: now}
		l.spent[p] = b
	}
	// Check both before taking from either, so a refusal costs nothing.
	own, all := *b, l.total
	if !own.take(now, lim.Window, n, lim.PeerBytes) || !all.take(now, lim.Window, n, lim.TotalBytes) {
		return errProbeBudget
	}
	*b, l.total = own, all
	return nil
}
