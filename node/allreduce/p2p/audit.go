package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/allreduce"
)

// The audit protocol, version 1: a member serves the encoded contributions
// it committed to in its last rounds, so that a validator can check them
// against their roots (allreduce.VerifyChunks) and audit the values that
// entered the average. One stream carries one request and its reply; every
// frame is a netx.Message.
//
//	auditor → member  request{root [32]byte, first u32, count u32}    type 1
//	member → auditor  proof{count u32, count × [32]byte}               type 2
//	                  then data{bytes} frames until the chunks are sent type 3
//	                  or refused{code u8, reason}                      type 4
//
// A request asks for at most MaxAuditRequest bytes of chunks. The member
// only serves what it has: the bytes it committed to are fixed, so a reply
// either verifies against the root or proves the member lied.
const (
	auditVersion = 1

	auditTypeRequest = 1
	auditTypeProof   = 2
	auditTypeData    = 3
	auditTypeRefused = 4

	auditRequestLen  = 32 + 4 + 4
	auditDataFrame   = 1 << 20
	auditMaxReason   = 200
	auditRefusedMax  = 2 + 1 + auditMaxReason
	auditProofMax    = 2 + 4 + 32*2*32
	auditRequestMax  = 2 + auditRequestLen
	auditDefaultKeep = 2
)

// MaxAuditRequest is the most chunk bytes one audit request may ask for; a
// layout whose single chunk is larger cannot be audited over this protocol.
const MaxAuditRequest = 4 << 20

// Audit refusal codes.
const (
	auditBusy     = 1
	auditNotFound = 2
	auditBad      = 3
	auditDenied   = 4
)

// Errors an auditor branches on; a reply that does not match its root wraps
// allreduce.ErrCommitMismatch.
var (
	// ErrAuditRefused means the member refused the request (busy, not
	// serving that root, a bad request or a requester it does not serve).
	ErrAuditRefused = errors.New("audit refused")
	// ErrAuditProtocol means the member's reply broke the protocol.
	ErrAuditProtocol = errors.New("audit protocol violation")
)

// AuditOptions configures a Contributions server; the zero value works.
type AuditOptions struct {
	// Keep is how many recent contributions stay served (default 2).
	Keep int
	// MaxConcurrent bounds requests served at once (default 2); more are
	// refused as busy.
	MaxConcurrent int
	// Timeout bounds each frame read or write (default 10 s).
	Timeout time.Duration
	// Allow, if set, names the peers served (the run's validators);
	// others are refused.
	Allow func(peer.ID) bool
	// Log receives one event per served or refused request at debug level.
	Log zerolog.Logger
}

// Contributions serves a member's recent committed contributions on one
// protocol id, until Close.
type Contributions struct {
	h     netx.Host
	proto protocol.ID
	opts  AuditOptions
	slots chan struct{} // one token per request being served

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	served []served // oldest first, at most opts.Keep
	closed bool
}

// served is one contribution and the roots it was announced under (one per
// matchmaking it entered).
type served struct {
	c     *allreduce.Contribution
	roots []allreduce.Root
}

// ServeContributions starts serving on proto at h; it serves nothing until
// Add.
func ServeContributions(h netx.Host, proto protocol.ID, opts AuditOptions) *Contributions {
	if opts.Keep <= 0 {
		opts.Keep = auditDefaultKeep
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 2
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	s := &Contributions{h: h, proto: proto, opts: opts, slots: make(chan struct{}, opts.MaxConcurrent)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	h.SetStreamHandler(proto, s.handle)
	return s
}

// Add serves c under its root in scope sc and returns that root. Adding
// the same contribution in another scope serves it under both roots; a
// new contribution beyond Keep stops the oldest being served.
func (s *Contributions) Add(sc allreduce.CommitScope, c *allreduce.Contribution) allreduce.Root {
	root := c.Root(sc)
	s.add(root, c)
	return root
}

func (s *Contributions) add(root allreduce.Root, c *allreduce.Contribution) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for i := range s.served {
		if s.served[i].c == c {
			s.served[i].roots = append(s.served[i].roots, root)
			return
		}
	}
	s.served = append(s.served, served{c: c, roots: []allreduce.Root{root}})
	if n := len(s.served) - s.opts.Keep; n > 0 {
		clear(s.served[:n])
		s.served = s.served[n:]
	}
}

// find returns the contribution served under root, or nil.
func (s *Contributions) find(root allreduce.Root) *allreduce.Contribution {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sv := range s.served {
		for _, r := range sv.roots {
			if r == root {
				return sv.c
			}
		}
	}
	return nil
}

// Close stops serving and returns once every handler has returned.
func (s *Contributions) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed, s.served = true, nil
	s.mu.Unlock()
	s.h.RemoveStreamHandler(s.proto)
	s.cancel()
	s.wg.Wait()
	return nil
}

// handle serves one stream: one request, one reply.
func (s *Contributions) handle(st network.Stream) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = st.Reset()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	from := st.Conn().RemotePeer()
	log := s.opts.Log.With().Str("peer", from.String()).Logger()
	fs := netx.NewFramedStream(st, auditRequestMax, s.opts.Timeout)
	if err := s.serve(fs, from, log); err != nil {
		log.Debug().Err(err).Msg("audit request failed")
		_ = fs.Reset()
		return
	}
	_ = fs.Close()
}

func (s *Contributions) serve(fs *netx.FramedStream, from peer.ID, log zerolog.Logger) error {
	m, err := fs.ReadMessage(s.ctx)
	if err != nil {
		return err
	}
	// Requests are read under their own small limit; replies are larger.
	fs = netx.NewFramedStream(fs.Stream(), max(auditRefusedMax, auditProofMax, 2+auditDataFrame), s.opts.Timeout)
	if m.Type != auditTypeRequest || m.Version != auditVersion || len(m.Body) != auditRequestLen {
		return s.refuse(fs, auditBad, fmt.Sprintf("type %d v%d, %d bytes: not a request", m.Type, m.Version, len(m.Body)), log)
	}
	var root allreduce.Root
	copy(root[:], m.Body)
	first, count := int(binary.BigEndian.Uint32(m.Body[32:])), int(binary.BigEndian.Uint32(m.Body[36:]))
	if s.opts.Allow != nil && !s.opts.Allow(from) {
		return s.refuse(fs, auditDenied, "not an auditor of this run", log)
	}
	c := s.find(root)
	if c == nil {
		return s.refuse(fs, auditNotFound, fmt.Sprintf("no served contribution has root %v", root), log)
	}
	l := c.Layout()
	if count < 1 || first >= l.Chunks() || count > l.Chunks()-first {
		return s.refuse(fs, auditBad, fmt.Sprintf("chunks %d+%d of %d", first, count, l.Chunks()), log)
	}
	if lo, hi := l.ChunkRange(first, count); hi-lo > MaxAuditRequest {
		return s.refuse(fs, auditBad, fmt.Sprintf("%d bytes asked, at most %d", hi-lo, MaxAuditRequest), log)
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return s.refuse(fs, auditBusy, fmt.Sprintf("serving %d audits", s.opts.MaxConcurrent), log)
	}
	start := time.Now()
	b, proof, err := c.Chunks(first, count)
	if err != nil {
		return s.refuse(fs, auditBad, err.Error(), log)
	}
	body := binary.BigEndian.AppendUint32(make([]byte, 0, 4+32*len(proof)), uint32(len(proof)))
	for _, h := range proof {
		body = append(body, h[:]...)
	}
	if err := fs.WriteMessage(s.ctx, netx.Message{Type: auditTypeProof, Version: auditVersion, Body: body}); err != nil {
		return err
	}
	for len(b) > 0 {
		n := min(len(b), auditDataFrame)
		if err := fs.WriteMessage(s.ctx, netx.Message{Type: auditTypeData, Version: auditVersion, Body: b[:n]}); err != nil {
			return err
		}
		b = b[n:]
	}
	log.Debug().Int("first", first).Int("chunks", count).Dur("took_ms", time.Since(start)).Msg("audit served")
	return nil
}

func (s *Contributions) refuse(fs *netx.FramedStream, code byte, reason string, log zerolog.Logger) error {
	log.Debug().Uint8("code", code).Str("reason", reason).Msg("audit refused")
	if len(reason) > auditMaxReason {
		reason = reason[:auditMaxReason]
	}
	return fs.WriteMessage(s.ctx, netx.Message{Type: auditTypeRefused, Version: auditVersion, Body: append([]byte{code}, reason...)})
}

// FetchChunks asks member p for chunks [first, first+count) of the
// contribution root commits to in scope sc with layout l, and returns their
// bytes once they verify against root (allreduce.VerifyChunks).
func FetchChunks(ctx context.Context, h netx.Host, p peer.ID, proto protocol.ID, root allreduce.Root, sc allreduce.CommitScope, l allreduce.CommitLayout, first, count int) ([]byte, error) {
	if err := l.Check(); err != nil {
		return nil, fmt.Errorf("fetch chunks: %w", err)
	}
	if first < 0 || count < 1 || first >= l.Chunks() || count > l.Chunks()-first {
		return nil, fmt.Errorf("fetch chunks %d+%d of %d", first, count, l.Chunks())
	}
	lo, hi := l.ChunkRange(first, count)
	if hi-lo > MaxAuditRequest {
		return nil, fmt.Errorf("fetch chunks %d+%d: %d bytes, at most %d per request", first, count, hi-lo, MaxAuditRequest)
	}
	st, err := h.NewStream(ctx, p, proto)
	if err != nil {
		return nil, fmt.Errorf("fetch chunks from %s: open stream: %w", p, err)
	}
	fs := netx.NewFramedStream(st, max(auditRefusedMax, auditProofMax, 2+auditDataFrame), 0)
	defer fs.Close()
	req := make([]byte, 0, auditRequestLen)
	req = append(req, root[:]...)
	req = binary.BigEndian.AppendUint32(req, uint32(first))
	req = binary.BigEndian.AppendUint32(req, uint32(count))
	if err := fs.WriteMessage(ctx, netx.Message{Type: auditTypeRequest, Version: auditVersion, Body: req}); err != nil {
		return nil, fmt.Errorf("fetch chunks from %s: %w", p, err)
	}
	if err := fs.CloseWrite(); err != nil {
		return nil, fmt.Errorf("fetch chunks from %s: close request: %w", p, err)
	}
	proof, err := readProof(ctx, fs)
	if err != nil {
		_ = fs.Reset()
		return nil, fmt.Errorf("fetch chunks from %s: %w", p, err)
	}
	b := make([]byte, 0, hi-lo)
	for len(b) < hi-lo {
		m, err := fs.ReadMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("fetch chunks from %s after %d of %d bytes: %w", p, len(b), hi-lo, err)
		}
		if m.Type != auditTypeData || m.Version != auditVersion || len(m.Body) == 0 || len(m.Body) > hi-lo-len(b) {
			_ = fs.Reset()
			return nil, fmt.Errorf("fetch chunks from %s: type %d v%d of %d bytes with %d left: %w",
				p, m.Type, m.Version, len(m.Body), hi-lo-len(b), ErrAuditProtocol)
		}
		b = append(b, m.Body...)
	}
	if err := allreduce.VerifyChunks(root, sc, l, first, b, proof); err != nil {
		return nil, fmt.Errorf("fetch chunks from %s: %w", p, err)
	}
	return b, nil
}

// readProof reads the reply's first frame: the proof, or a refusal.
func readProof(ctx context.Context, fs *netx.FramedStream) ([][32]byte, error) {
	m, err := fs.ReadMessage(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case m.Version != auditVersion:
		return nil, fmt.Errorf("reply v%d: %w", m.Version, ErrAuditProtocol)
	case m.Type == auditTypeRefused && len(m.Body) >= 1:
		return nil, fmt.Errorf("%w: code %d: %q", ErrAuditRefused, m.Body[0], m.Body[1:])
	case m.Type != auditTypeProof || len(m.Body) < 4:
		return nil, fmt.Errorf("reply type %d of %d bytes: %w", m.Type, len(m.Body), ErrAuditProtocol)
	}
	n := uint64(binary.BigEndian.Uint32(m.Body))
	if n*32 != uint64(len(m.Body)-4) {
		return nil, fmt.Errorf("proof of %d hashes in %d bytes: %w", n, len(m.Body)-4, ErrAuditProtocol)
	}
	proof := make([][32]byte, n)
	for i := range proof {
		copy(proof[i][:], m.Body[4+32*i:])
	}
	return proof, nil
}

// FetchContribution fetches member p's whole encoded contribution under
// root, MaxAuditRequest bytes at a time, each request checked against
// root, and returns it: what VerifyContribution accepts and
// CommitLayout.Decode turns into the values that entered the average.
func FetchContribution(ctx context.Context, h netx.Host, p peer.ID, proto protocol.ID, root allreduce.Root, sc allreduce.CommitScope, l allreduce.CommitLayout) ([]byte, error) {
	if err := l.Check(); err != nil {
		return nil, fmt.Errorf("fetch contribution: %w", err)
	}
	lo, hi := l.ChunkRange(0, 1)
	per := max(1, MaxAuditRequest/max(hi-lo, 1))
	out := make([]byte, 0, l.Bytes())
	for first := 0; first < l.Chunks(); first += per {
		b, err := FetchChunks(ctx, h, p, proto, root, sc, l, first, min(per, l.Chunks()-first))
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}
