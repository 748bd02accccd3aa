package state

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/netx"
)

// DonorOptions configures a Donor. The zero value works.
type DonorOptions struct {
	// Run names the run the offers belong to; Offer copies it into each
	// Offer. Empty is allowed for a donor that never marshals its offers.
	Run string
	// Keep is how many recent offers stay served (default 2), so a joiner
	// downloading epoch e is not cut off when the donor offers e+1.
	Keep int
	// MaxConcurrent bounds range requests served at once (default 4);
	// more get a busy refusal at once. Manifest requests are small and
	// bounded separately.
	MaxConcurrent int
	// PerPeer bounds one peer's range requests served at once (default 2,
	// what Fetch asks of one donor), so that no peer holds every slot.
	PerPeer int
	// MinRate is the slowest a range is served, in bytes/s (default 256
	// KiB/s, 2 Mbit/s): a range of n bytes must be read within Timeout +
	// n/MinRate, so a reader that drips cannot hold a slot for long.
	MinRate int64
	// Timeout bounds each frame read or write (default 10 s).
	Timeout time.Duration
	// Log receives one event per served or refused request at debug level.
	Log zerolog.Logger
}

func (o DonorOptions) withDefaults() DonorOptions {
	if o.Keep <= 0 {
		o.Keep = 2
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.PerPeer <= 0 {
		o.PerPeer = 2
	}
	if o.MinRate <= 0 {
		o.MinRate = 256 << 10
	}
	return o
}

// maxManifestServing bounds manifest requests answered at once.
const maxManifestServing = 16

// Donor serves byte ranges of the state blobs it currently offers on one
// protocol id, until Close.
type Donor struct {
	h     netx.Host
	proto protocol.ID
	opts  DonorOptions

	ctx    context.Context // ends every handler's I/O at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // running handlers

	ranges    chan struct{} // one token per range request being served
	manifests chan struct{} // one token per manifest request being served

	mu      sync.Mutex
	offers  []*offered      // oldest first, at most opts.Keep
	serving map[peer.ID]int // range requests being served, per peer
	closed  bool
}

// offered is one served blob and its manifests, computed on demand.
type offered struct {
	offer Offer
	blob  []byte

	mu        sync.Mutex
	manifests map[int][][32]byte // by chunk size: each computed once
}

// NewDonor starts serving on proto at h. It serves nothing until Offer.
func NewDonor(h netx.Host, proto protocol.ID, opts DonorOptions) *Donor {
	opts = opts.withDefaults()
	d := &Donor{
		h: h, proto: proto, opts: opts,
		ranges:    make(chan struct{}, opts.MaxConcurrent),
		manifests: make(chan struct{}, maxManifestServing),
		serving:   map[peer.ID]int{},
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	h.SetStreamHandler(proto, d.handle)
	return d
}

// Offer starts serving blob as the state of epoch and returns its Offer;
// the oldest offer beyond Keep stops being served (a transfer already
// reading it finishes). After Close it only computes the Offer. The donor
// keeps blob
// without copying: the caller must not modify it afterwards.
func (d *Donor) Offer(epoch uint64, blob []byte) Offer {
	o := &offered{
		offer: Offer{Run: d.opts.Run, Epoch: epoch, Hash: Hash(blob), Size: int64(len(blob))},
		blob:  blob,
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return o.offer // a closed donor serves nothing
	}
	d.offers = append(d.offers, o)
	if n := len(d.offers) - d.opts.Keep; n > 0 {
		clear(d.offers[:n])
		d.offers = d.offers[n:]
	}
	return o.offer
}

// Offers returns the offers being served, oldest first.
func (d *Donor) Offers() []Offer {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Offer, len(d.offers))
	for i, o := range d.offers {
		out[i] = o.offer
	}
	return out
}

// Close stops serving: new streams are no longer accepted, transfers in
// progress are cut, and Close returns once every handler has returned.
func (d *Donor) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.offers = nil
	d.mu.Unlock()
	d.h.RemoveStreamHandler(d.proto)
	d.cancel()
	d.wg.Wait()
	return nil
}

// find returns the offer with hash, or nil.
func (d *Donor) find(hash [32]byte) *offered {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range d.offers {
		if o.offer.Hash == hash {
			return o
		}
	}
	return nil
}

// handle serves one stream: one request, one reply.
func (d *Donor) handle(s network.Stream) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		_ = s.Reset()
		return
	}
	d.wg.Add(1)
	d.mu.Unlock()
	defer d.wg.Done()

	in := netx.NewFramedStream(s, requestFrameMax, d.opts.Timeout)
	log := d.opts.Log.With().Str("peer", s.Conn().RemotePeer().String()).Logger()
	m, err := in.ReadMessage(d.ctx)
	if err != nil {
		log.Debug().Err(err).Msg("state request unread")
		_ = s.Reset()
		return
	}
	req, err := parseRequest(m)
	var out *netx.FramedStream
	if err == nil {
		out, err = d.serve(s, req, log)
	} else {
		out = netx.NewFramedStream(s, refusedFrameMax, d.opts.Timeout)
		err = d.refuse(out, refusedBad, err.Error())
	}
	if err != nil {
		log.Debug().Err(err).Msg("state request failed")
		_ = s.Reset()
		return
	}
	_ = out.Close()
}

// serve answers a parsed request and returns the stream it wrote on.
func (d *Donor) serve(s network.Stream, req request, log zerolog.Logger) (*netx.FramedStream, error) {
	hash := req.hash()
	o := d.find(hash)
	if o == nil {
		fs := netx.NewFramedStream(s, refusedFrameMax, d.opts.Timeout)
		return fs, d.refuse(fs, refusedNotFound, fmt.Sprintf("no current offer has hash %x", hash[:8]))
	}
	if req.man != nil {
		return d.serveManifest(s, o, int(req.man.chunk), log)
	}
	return d.serveRange(s, o, *req.rng, log)
}

func (r request) hash() [32]byte {
	if r.rng != nil {
		return r.rng.hash
	}
	return r.man.hash
}

func (d *Donor) serveRange(s network.Stream, o *offered, r rangeReq, log zerolog.Logger) (*netx.FramedStream, error) {
	fs := netx.NewFramedStream(s, max(2+dataFrame, refusedFrameMax), d.opts.Timeout)
	size := uint64(len(o.blob))
	if r.length == 0 || r.length > MaxRequest || r.offset > size || uint64(r.length) > size-r.offset {
		return fs, d.refuse(fs, refusedBad, fmt.Sprintf("range %d+%d of a %d-byte state (at most %d per request)", r.offset, r.length, size, MaxRequest))
	}
	who := s.Conn().RemotePeer()
	if !d.take(who) {
		return fs, d.refuse(fs, refusedBusy, fmt.Sprintf("serving %d downloads to this peer", d.opts.PerPeer))
	}
	defer d.give(who)
	select {
	case d.ranges <- struct{}{}:
		defer func() { <-d.ranges }()
	default:
		return fs, d.refuse(fs, refusedBusy, fmt.Sprintf("serving %d downloads", d.opts.MaxConcurrent))
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(d.ctx, d.opts.Timeout+time.Duration(float64(r.length)/float64(d.opts.MinRate)*float64(time.Second)))
	defer cancel()
	data := o.blob[r.offset : r.offset+uint64(r.length)]
	for len(data) > 0 {
		n := min(len(data), dataFrame)
		if err := fs.WriteMessage(ctx, netx.Message{Type: typeData, Version: wireVersion, Body: data[:n]}); err != nil {
			return fs, err
		}
		data = data[n:]
	}
	log.Debug().Uint64("epoch", o.offer.Epoch).Uint64("offset", r.offset).Uint32("bytes", r.length).Dur("took_ms", time.Since(start)).Msg("state range served")
	return fs, nil
}

// take counts a range request of peer p being served, unless p already
// has PerPeer.
func (d *Donor) take(p peer.ID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.serving[p] >= d.opts.PerPeer {
		return false
	}
	d.serving[p]++
	return true
}

// give ends what take counted.
func (d *Donor) give(p peer.ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.serving[p]--; d.serving[p] <= 0 {
		delete(d.serving, p)
	}
}

func (d *Donor) serveManifest(s network.Stream, o *offered, chunk int, log zerolog.Logger) (*netx.FramedStream, error) {
	if !validChunk(chunk) {
		fs := netx.NewFramedStream(s, refusedFrameMax, d.opts.Timeout)
		return fs, d.refuse(fs, refusedBad, fmt.Sprintf("manifest chunk %d bytes, want a power of two from %d to %d", chunk, MinChunk, MaxRequest))
	}
	fs := netx.NewFramedStream(s, max(manifestFrameLen(chunkCount(o.offer.Size, chunk)), refusedFrameMax), d.opts.Timeout)
	select {
	case d.manifests <- struct{}{}:
		defer func() { <-d.manifests }()
	default:
		return fs, d.refuse(fs, refusedBusy, "serving too many manifests")
	}
	hashes := o.manifestFor(chunk)
	if err := fs.WriteMessage(d.ctx, hashesMessage(chunk, hashes)); err != nil {
		return fs, err
	}
	log.Debug().Uint64("epoch", o.offer.Epoch).Int("chunks", len(hashes)).Msg("state manifest served")
	return fs, nil
}

// manifestFor returns the tree's nodes over each chunk-byte piece of the
// blob (levelOf), computed once per chunk size. Chunk sizes are powers of
// two from MinChunk to MaxRequest (validChunk), so an offer hashes its
// blob at most seven times however its requesters alternate sizes; a
// manifest takes 32 bytes per MinChunk of state at most.
func (o *offered) manifestFor(chunk int) [][32]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	if m, ok := o.manifests[chunk]; ok {
		return m
	}
	if o.manifests == nil {
		o.manifests = map[int][][32]byte{}
	}
	m := levelOf(o.blob, chunk)
	o.manifests[chunk] = m
	return m
}

// refuse writes a refusal; the joiner reads it and ends the exchange.
func (d *Donor) refuse(fs *netx.FramedStream, r refusal, reason string) error {
	d.opts.Log.Debug().Str("reason", reason).Stringer("refusal", r).Msg("state request refused")
	err := fs.WriteMessage(d.ctx, refusedMessage(r, reason))
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
