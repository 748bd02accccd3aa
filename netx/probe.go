package netx

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Probe protocol, version 1. One stream carries any number of exchanges;
// every control message is a Message of at most probeMaxFrame bytes.
//
//	client → server  request{op u8, n u64}      type 1
//	server → client  ready{op u8, n u64}        type 2 (echo), or
//	                 refused{reason}            type 3
//	ping:      nothing more; the request/ready round trip is the RTT.
//	upload:    client sends n raw bytes; server answers done{n u64} (type 4)
//	           after the last byte, so the client's clock spans the link.
//	download:  client sends go{} (type 5); server sends n raw bytes.
//
// The ready round trip runs before any clock starts, so stream setup and
// protocol negotiation are never timed. A bandwidth time still includes
// one round trip (the last byte's trip plus done, or go plus the first
// byte's trip); it is small against any transfer worth measuring.
const (
	probeVersion   = 1
	probeRequest   = 1
	probeReady     = 2
	probeRefused   = 3
	probeDone      = 4
	probeGo        = 5
	probeMaxFrame  = 256
	probeChunk     = 256 << 10
	probePingTimed = 3
)

type probeOp uint8

const (
	opPing probeOp = iota + 1
	opUpload
	opDownload
)

// Direction says which way a bandwidth probe's bytes flow.
type Direction uint8

const (
	// Upload sends the bytes from the caller to the peer.
	Upload Direction = iota + 1
	// Download has the peer send the bytes to the caller.
	Download
)

// String names the direction.
func (d Direction) String() string {
	switch d {
	case Upload:
		return "upload"
	case Download:
		return "download"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// ErrProbeRefused reports a request the peer declined, such as a byte
// count over its limit.
var ErrProbeRefused = errors.New("probe refused")

// BandwidthResult is one timed transfer.
type BandwidthResult struct {
	Bytes         int64
	Took          time.Duration
	BitsPerSecond float64
}

// zeros is what bandwidth probes send; QUIC does not compress, so the
// content does not matter. Shared read-only.
var zeros = make([]byte, probeChunk)

// RegisterProbeHandler serves ping and bandwidth probes on proto, refusing
// transfers of more than maxBytes and limiting nothing else (a benchmark's
// or a test's server; a peer on a run serves with ServeProbes' limits).
// Each call of the handler ends when the peer closes its stream or a read
// or write idles past DefaultStreamTimeout.
func RegisterProbeHandler(h Host, proto protocol.ID, maxBytes int64) {
	ServeProbes(h, proto, ProbeLimits{MaxBytes: maxBytes})
}

func serveProbes(ctx context.Context, fs *FramedStream, admit func(n int64) error) error {
	buf := make([]byte, probeChunk)
	for {
		op, n, err := readProbeRequest(ctx, fs)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if op != opPing {
			if err := admit(n); err != nil {
				// A graceful close (not a reset) lets the refusal reach the peer.
				return fs.WriteMessage(ctx, Message{Type: probeRefused, Version: probeVersion, Body: []byte(err.Error())})
			}
		}
		if err := fs.WriteMessage(ctx, probeMessage(probeReady, op, n)); err != nil {
			return err
		}
		switch op {
		case opUpload:
			if err := receiveBytes(ctx, fs, buf, n); err != nil {
				return err
			}
			if err := fs.WriteMessage(ctx, probeMessage(probeDone, op, n)); err != nil {
				return err
			}
		case opDownload:
			m, err := fs.ReadMessage(ctx)
			if err != nil {
				return err
			}
			if m.Type != probeGo {
				return fmt.Errorf("probe: message type %d, want go", m.Type)
			}
			if err := sendBytes(ctx, fs, n); err != nil {
				return err
			}
		}
	}
}

// Ping measures the round-trip time to p over proto: the smallest of a few
// request/reply round trips on one stream, after an untimed one that
// settles stream setup.
func Ping(ctx context.Context, h Host, p peer.ID, proto protocol.ID) (time.Duration, error) {
	fs, err := openProbe(ctx, h, p, proto)
	if err != nil {
		return 0, err
	}
	defer fs.Close()
	best := time.Duration(-1)
	for i := range probePingTimed + 1 {
		start := time.Now()
		if err := probeExchange(ctx, fs, opPing, int64(i)); err != nil {
			return 0, fmt.Errorf("ping %s: %w", p, err)
		}
		if rtt := time.Since(start); i > 0 && (best < 0 || rtt < best) {
			best = rtt
		}
	}
	return best, nil
}

// MeasureBandwidth times the transfer of n bytes between h and p over
// proto in direction dir. The clock starts after the peer has accepted the
// request, so it spans the bytes on the link plus about one round trip.
func MeasureBandwidth(ctx context.Context, h Host, p peer.ID, proto protocol.ID, n int64, dir Direction) (BandwidthResult, error) {
	if n <= 0 {
		return BandwidthResult{}, fmt.Errorf("bandwidth probe of %d bytes: must be positive", n)
	}
	op := opUpload
	switch dir {
	case Upload:
	case Download:
		op = opDownload
	default:
		return BandwidthResult{}, fmt.Errorf("bandwidth probe: unknown %v", dir)
	}
	fs, err := openProbe(ctx, h, p, proto)
	if err != nil {
		return BandwidthResult{}, err
	}
	defer fs.Close()
	took, err := timeTransfer(ctx, fs, op, n)
	if err != nil {
		return BandwidthResult{}, fmt.Errorf("%v probe of %d bytes with %s: %w", dir, n, p, err)
	}
	return BandwidthResult{Bytes: n, Took: took, BitsPerSecond: float64(8*n) / took.Seconds()}, nil
}

func timeTransfer(ctx context.Context, fs *FramedStream, op probeOp, n int64) (time.Duration, error) {
	if err := probeExchange(ctx, fs, op, n); err != nil {
		return 0, err
	}
	start := time.Now()
	if op == opDownload {
		if err := fs.WriteMessage(ctx, Message{Type: probeGo, Version: probeVersion}); err != nil {
			return 0, err
		}
		if err := receiveBytes(ctx, fs, make([]byte, probeChunk), n); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	if err := sendBytes(ctx, fs, n); err != nil {
		return 0, err
	}
	m, err := fs.ReadMessage(ctx)
	if err != nil {
		return 0, err
	}
	took := time.Since(start)
	if m.Type != probeDone || len(m.Body) != 9 || int64(binary.BigEndian.Uint64(m.Body[1:])) != n {
		return 0, fmt.Errorf("probe: bad done message (type %d, %d bytes)", m.Type, len(m.Body))
	}
	return took, nil
}

func openProbe(ctx context.Context, h Host, p peer.ID, proto protocol.ID) (*FramedStream, error) {
	s, err := h.NewStream(ctx, p, proto)
	if err != nil {
		return nil, fmt.Errorf("open probe stream to %s on %s: %w", p, proto, err)
	}
	return NewFramedStream(s, probeMaxFrame, DefaultStreamTimeout), nil
}

// probeExchange sends a request and waits for the peer's ready echo.
func probeExchange(ctx context.Context, fs *FramedStream, op probeOp, n int64) error {
	if err := fs.WriteMessage(ctx, probeMessage(probeRequest, op, n)); err != nil {
		return err
	}
	m, err := fs.ReadMessage(ctx)
	if err != nil {
		return err
	}
	switch {
	case m.Type == probeRefused:
		return fmt.Errorf("%w: %s", ErrProbeRefused, m.Body)
	case m.Type != probeReady || m.Version != probeVersion || len(m.Body) != 9:
		return fmt.Errorf("probe: unexpected reply type %d v%d (%d bytes)", m.Type, m.Version, len(m.Body))
	case probeOp(m.Body[0]) != op || int64(binary.BigEndian.Uint64(m.Body[1:])) != n:
		return fmt.Errorf("probe: reply does not echo the request")
	}
	return nil
}

func probeMessage(typ uint8, op probeOp, n int64) Message {
	body := binary.BigEndian.AppendUint64([]byte{byte(op)}, uint64(n))
	return Message{Type: typ, Version: probeVersion, Body: body}
}

func readProbeRequest(ctx context.Context, fs *FramedStream) (probeOp, int64, error) {
	m, err := fs.ReadMessage(ctx)
	if err != nil {
		return 0, 0, err
	}
	if m.Type != probeRequest || m.Version != probeVersion || len(m.Body) != 9 {
		return 0, 0, fmt.Errorf("probe: bad request type %d v%d (%d bytes)", m.Type, m.Version, len(m.Body))
	}
	op := probeOp(m.Body[0])
	if op < opPing || op > opDownload {
		return 0, 0, fmt.Errorf("probe: unknown op %d", op)
	}
	return op, int64(binary.BigEndian.Uint64(m.Body[1:])), nil
}

// sendBytes writes n raw bytes, each chunk under its own deadline.
func sendBytes(ctx context.Context, fs *FramedStream, n int64) error {
	for sent := int64(0); sent < n; {
		chunk := zeros[:min(int64(len(zeros)), n-sent)]
		stop, err := fs.arm(ctx, fs.s.SetWriteDeadline)
		if err != nil {
			return err
		}
		m, err := fs.s.Write(chunk)
		stop()
		sent += int64(m)
		if err != nil {
			return fmt.Errorf("send probe bytes (%d of %d): %w", sent, n, ctxErr(ctx, err))
		}
	}
	return nil
}

// receiveBytes reads and discards n raw bytes, each read under its own
// deadline.
func receiveBytes(ctx context.Context, fs *FramedStream, buf []byte, n int64) error {
	for got := int64(0); got < n; {
		stop, err := fs.arm(ctx, fs.s.SetReadDeadline)
		if err != nil {
			return err
		}
		m, err := fs.s.Read(buf[:min(int64(len(buf)), n-got)])
		stop()
		got += int64(m)
		if err != nil && got < n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("receive probe bytes (%d of %d): %w", got, n, ctxErr(ctx, err))
		}
	}
	return nil
}
