package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dtrain-dev/dtrain/netx"
)

// errCorrupt reports a chunk whose bytes do not match the manifest.
var errCorrupt = errors.New("chunk does not match the manifest")

// openRequest opens a stream to p and sends m; the returned stream reads
// frames of at most maxReply bytes.
func (f *fetch) openRequest(ctx context.Context, p peer.ID, m netx.Message, maxReply int) (*netx.FramedStream, error) {
	s, err := f.h.NewStream(ctx, p, f.proto)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	fs := netx.NewFramedStream(s, max(maxReply, refusedFrameMax), f.opts.RequestTimeout)
	if err := fs.WriteMessage(ctx, m); err != nil {
		_ = fs.Reset()
		return nil, err
	}
	if err := fs.CloseWrite(); err != nil {
		_ = fs.Reset()
		return nil, fmt.Errorf("close request: %w", err)
	}
	return fs, nil
}

// getChunk downloads chunk i from p into scratch (the worker's own, so a
// duplicate request near the end never races the first one over f.buf),
// checks it against the manifest if there is one, and returns the bytes.
func (f *fetch) getChunk(ctx context.Context, p peer.ID, i int, scratch []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.RequestTimeout)
	defer cancel()
	off, end := f.chunkRange(i)
	dst := scratch[:end-off]
	req := rangeReq{hash: f.want.Hash, offset: uint64(off), length: uint32(len(dst))}
	fs, err := f.openRequest(ctx, p, req.message(), 2+min(len(dst), dataFrame))
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	for got := 0; got < len(dst); {
		m, err := fs.ReadMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("chunk %d after %d of %d bytes: %w", i, got, len(dst), err)
		}
		switch {
		case m.Type == typeRefused:
			return nil, refusedError(m)
		case m.Type != typeData || m.Version != wireVersion:
			_ = fs.Reset()
			return nil, fmt.Errorf("%w: reply type %d v%d to a range request", ErrProtocol, m.Type, m.Version)
		case len(m.Body) == 0 || len(m.Body) > len(dst)-got:
			_ = fs.Reset()
			return nil, fmt.Errorf("%w: %d-byte data frame with %d bytes left of the range", ErrProtocol, len(m.Body), len(dst)-got)
		}
		got += copy(dst[got:], m.Body)
	}
	if f.hashes != nil && chunkHash(dst) != f.hashes[i] {
		return nil, fmt.Errorf("chunk %d (%d bytes at %d): %w", i, len(dst), off, errCorrupt)
	}
	return dst, nil
}

// getManifest asks p for the per-chunk hashes of the wanted blob.
func (f *fetch) getManifest(ctx context.Context, p peer.ID) ([][32]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.RequestTimeout)
	defer cancel()
	req := manifestReq{hash: f.want.Hash, chunk: uint32(f.chunk)}
	fs, err := f.openRequest(ctx, p, req.message(), manifestFrameLen(f.n))
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	m, err := fs.ReadMessage(ctx)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return parseHashes(m, f.want.Size, f.chunk)
}

// chunkRange is chunk i's byte range in the blob.
func (f *fetch) chunkRange(i int) (off, end int) {
	off = i * f.chunk
	return off, min(off+f.chunk, len(f.buf))
}
