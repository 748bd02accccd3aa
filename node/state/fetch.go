package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/netx"
)

var (
	// ErrHashMismatch reports a downloaded blob whose SHA-256 is not the
	// offer's: some donors served wrong bytes. Retry with other donors.
	ErrHashMismatch = errors.New("state hash mismatch")
	// ErrNoDonors reports a Fetch that ran out of donors before the blob
	// was complete; the error text says what each donor did.
	ErrNoDonors = errors.New("no donor left")
)

// DefaultMaxSize is the largest state Fetch allocates for by default.
const DefaultMaxSize = 16 << 30

// FetchOptions configures Fetch. The zero value works.
type FetchOptions struct {
	// ChunkSize is the bytes per request (default 1 MiB), a power of two
	// from MinChunk to MaxRequest.
	ChunkSize int
	// PerDonor is how many requests run at once to each donor (default 2).
	PerDonor int
	// MaxFailures drops a donor after this many failed requests (default
	// 3). A donor that does not have the state, or serves bytes that do
	// not match the manifest, is dropped at once.
	MaxFailures int
	// MaxBusy drops a donor after this many busy replies in a row
	// (default 60); busy replies are retried with backoff up to 1 s.
	MaxBusy int
	// RequestTimeout bounds one request, stream setup included (default
	// 30 s), so a stalled donor's chunk moves to another donor.
	RequestTimeout time.Duration
	// MaxSize refuses offers larger than this (default DefaultMaxSize).
	MaxSize int64
	// NoManifest skips the per-chunk hashes: a bad donor is then found
	// only by the whole-blob hash, as ErrHashMismatch.
	NoManifest bool
	// Partial, when set, keeps the chunks downloaded so far, so a Fetch
	// retried with the same Partial and offer skips them.
	Partial *Partial
	// Progress, when set, is called after each chunk with the bytes held
	// and the total, from the download's goroutines (possibly several at
	// once); it must not block.
	Progress func(done, total int64)
}

func (o FetchOptions) withDefaults() (FetchOptions, error) {
	if o.ChunkSize == 0 {
		o.ChunkSize = 1 << 20
	}
	if !validChunk(o.ChunkSize) {
		return o, fmt.Errorf("chunk size %d: want a power of two from %d to %d", o.ChunkSize, MinChunk, MaxRequest)
	}
	if o.PerDonor <= 0 {
		o.PerDonor = 2
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 3
	}
	if o.MaxBusy <= 0 {
		o.MaxBusy = 60
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	return o, nil
}

// FetchStats says how a Fetch went.
type FetchStats struct {
	Bytes   map[peer.ID]int64  // state bytes received from each donor
	Dropped map[peer.ID]string // why each dropped donor was dropped
	Resumed int64              // bytes kept from a Partial (and matching the manifest)
	Retries int                // requests that failed or were refused
	Took    time.Duration
}

// Partial is a download in progress, for resuming a failed Fetch. Its
// zero value is empty; Fetch fills it and empties it on success or on a
// hash mismatch. It is not safe for concurrent Fetches.
type Partial struct {
	want  Offer
	chunk int
	buf   []byte
	done  []bool
}

// Held returns the bytes of complete chunks it holds.
func (p *Partial) Held() int64 {
	var n int64
	for i, ok := range p.done {
		if ok {
			n += int64(min(p.chunk, len(p.buf)-i*p.chunk))
		}
	}
	return n
}

// fetch is one Fetch call's state.
type fetch struct {
	h     netx.Host
	proto protocol.ID
	want  Offer
	opts  FetchOptions
	log   zerolog.Logger
	chunk int
	n     int // chunks

	buf    []byte
	done   []bool     // guarded by mu once workers run
	hashes [][32]byte // the manifest; nil without one

	stop context.CancelFunc // ends the workers: done, or no donor left

	mu        sync.Mutex
	pending   []int     // chunks to fetch, in order
	avoid     []peer.ID // per chunk: the donor that last failed it
	attempts  map[int][]*attempt
	doneCount int
	held      int64
	resumed   int64         // held when the download started: kept from a Partial
	wake      chan struct{} // closed and replaced on every change
	donors    []*donorState
	alive     int
	retries   int
	chunkTime time.Duration // summed over the gotChunks attempts that brought a chunk
	gotChunks int
}

// attempt is one request for a chunk in flight. Near the end a chunk may
// have two, from different donors (the second once the first is late: see
// pickLocked); the first to finish wins and cancels the other.
type attempt struct {
	d       *donorState
	cancel  context.CancelFunc
	started time.Time
}

// donorState is what Fetch knows of one donor.
type donorState struct {
	id       peer.ID
	bytes    int64
	failures int
	busy     int // busy replies in a row
	dropped  string
	lastErr  error
}

// Fetch downloads the state named by want from donors over proto,
// several chunks at a time from each, and returns it once its size and
// SHA-256 match want. A donor that fails is dropped after MaxFailures
// failed requests and its chunks go to the others; completed chunks are
// never fetched again. Memory: the blob, plus one chunk buffer per
// request in flight (PerDonor per donor). Logs go to zerolog.Ctx(ctx).
func Fetch(ctx context.Context, h netx.Host, proto protocol.ID, want Offer, donors []peer.ID, opts FetchOptions) ([]byte, FetchStats, error) {
	start := time.Now()
	f, err := newFetch(ctx, h, proto, want, donors, opts)
	if err != nil {
		return nil, FetchStats{}, fmt.Errorf("fetch state %v: %w", want, err)
	}
	err = f.run(ctx)
	stats := f.stats(time.Since(start))
	if err != nil {
		return nil, stats, fmt.Errorf("fetch state %v: %w", want, err)
	}
	f.log.Info().Stringer("state", want).Int64("bytes", want.Size).Dur("took_ms", stats.Took).Int("retries", stats.Retries).Msg("state fetched")
	return f.buf, stats, nil
}

func newFetch(ctx context.Context, h netx.Host, proto protocol.ID, want Offer, donors []peer.ID, opts FetchOptions) (*fetch, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if want.Size <= 0 || want.Size > opts.MaxSize {
		return nil, fmt.Errorf("%w: size %d, want 1..%d", ErrBadOffer, want.Size, opts.MaxSize)
	}
	f := &fetch{
		h: h, proto: proto, want: want, opts: opts,
		log:   zerolog.Ctx(ctx).With().Stringer("state", want).Logger(),
		chunk: opts.ChunkSize, n: chunkCount(want.Size, opts.ChunkSize),
		wake: make(chan struct{}),
	}
	seen := map[peer.ID]bool{h.ID(): true}
	for _, p := range donors {
		if !seen[p] {
			seen[p] = true
			f.donors = append(f.donors, &donorState{id: p})
		}
	}
	if len(f.donors) == 0 {
		return nil, fmt.Errorf("%w: no donors given other than this peer", ErrNoDonors)
	}
	f.alive = len(f.donors)
	if p := opts.Partial; p != nil && p.want == want && p.chunk == f.chunk && len(p.buf) == int(want.Size) {
		f.buf, f.done = p.buf, p.done
	} else {
		f.buf, f.done = make([]byte, want.Size), make([]bool, f.n)
	}
	f.held = f.heldBytes()
	return f, nil
}

func (f *fetch) heldBytes() int64 {
	p := Partial{chunk: f.chunk, buf: f.buf, done: f.done}
	return p.Held()
}

// run fetches the manifest, then the chunks, then checks the whole.
func (f *fetch) run(ctx context.Context) error {
	if p := f.opts.Partial; p != nil {
		*p = Partial{want: f.want, chunk: f.chunk, buf: f.buf, done: f.done}
	}
	if !f.opts.NoManifest {
		f.agreeManifest(ctx)
		f.recheckHeld()
	}
	if err := f.download(ctx); err != nil {
		return err
	}
	if p := f.opts.Partial; p != nil {
		*p = Partial{} // the caller owns the result or retries afresh
	}
	// With a manifest, every chunk in buf matched its node and the nodes
	// hash to want (checkManifest), so the tree over buf has want's root
	// (tree.go): hashing the whole blob again would only spend a second
	// SHA-256 pass on it. Without one, the whole hash is the only check.
	if f.hashes != nil {
		return nil
	}
	if got := Hash(f.buf); got != f.want.Hash {
		return fmt.Errorf("%w: got %x, want %x (bytes from %s)", ErrHashMismatch, got[:8], f.want.Hash[:8], f.contributors())
	}
	return nil
}

// agreeManifest asks every donor for its manifest and adopts the first
// that hashes to the state wanted (checkManifest): a manifest proves
// itself, so no number of donors sending another can outvote it. A donor
// whose manifest does not hash to the state is dropped: it lied, or holds
// another state.
func (f *fetch) agreeManifest(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan [][32]byte, len(f.donors)) // never blocks a sender; nil: no manifest that checks
	var wg sync.WaitGroup
	for _, d := range f.donors {
		wg.Go(func() {
			hashes, err := f.getManifest(ctx, d.id)
			if err == nil {
				err = checkManifest(hashes, f.chunk, f.want.Hash, f.want.Size)
			}
			switch {
			case errors.Is(err, errManifest):
				f.mu.Lock()
				f.dropLocked(d, err.Error())
				f.mu.Unlock()
			case err != nil && ctx.Err() == nil:
				f.fail(d, err)
			}
			if err != nil {
				hashes = nil
			}
			answers <- hashes
		})
	}
	// The first manifest that checks is the one: the others need not be
	// waited for, and a donor still answering is not blamed.
	for range f.donors {
		select {
		case hashes := <-answers:
			if hashes != nil {
				f.hashes = hashes
				cancel()
				wg.Wait()
				return
			}
		case <-ctx.Done():
			wg.Wait()
			return
		}
	}
	wg.Wait() // no donor sent a manifest that checks: the download reports why
}

// recheckHeld forgets resumed chunks that do not match the manifest.
func (f *fetch) recheckHeld() {
	if f.hashes == nil {
		return
	}
	for i, ok := range f.done {
		if off, end := f.chunkRange(i); ok && chunkHash(f.buf[off:end]) != f.hashes[i] {
			f.done[i] = false
		}
	}
	f.held = f.heldBytes()
}

func (f *fetch) stats(took time.Duration) FetchStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := FetchStats{Bytes: map[peer.ID]int64{}, Dropped: map[peer.ID]string{}, Resumed: f.resumed, Retries: f.retries, Took: took}
	for _, d := range f.donors {
		s.Bytes[d.id] = d.bytes
		if d.dropped != "" {
			s.Dropped[d.id] = d.dropped
		}
	}
	return s
}

// contributors lists the donors that served bytes.
func (f *fetch) contributors() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var parts []string
	for _, d := range f.donors {
		if d.bytes > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d", d.id, d.bytes))
		}
	}
	return strings.Join(parts, ", ")
}

// report says what each donor did, for the error when none is left.
func (f *fetch) reportLocked() error {
	var b bytes.Buffer
	allNotFound := true
	for i, d := range f.donors {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s served %d bytes, %s", d.id, d.bytes, d.dropped)
		allNotFound = allNotFound && errors.Is(d.lastErr, ErrNotFound)
	}
	if allNotFound {
		return fmt.Errorf("%w: %w: %s", ErrNoDonors, ErrNotFound, b.String())
	}
	return fmt.Errorf("%w: %d of %d chunks missing: %s", ErrNoDonors, f.n-f.doneCount, f.n, b.String())
}
