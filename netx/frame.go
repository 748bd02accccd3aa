package netx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Frame layout. A frame is a fixed 4-byte big-endian payload length
// followed by that many payload bytes:
//
//	+----------------+---------------------+
//	| length  uint32 | payload [length]byte |
//	+----------------+---------------------+
//
// A fixed-width prefix (rather than a uvarint) has exactly one encoding per
// length, so a decoder has no non-canonical or overlong prefixes to reject,
// and the 4 bytes are noise next to the tensor parts frames carry.
//
// A Message is a typed frame: its payload starts with a one-byte type and a
// one-byte schema version, then the message body:
//
//	+----------------+-----------+--------------+--------------------------+
//	| length  uint32 | type  u8  | version  u8  | body [length-2]byte      |
//	+----------------+-----------+--------------+--------------------------+
const frameHeaderLen = 4

// FrameHeaderLen is the length prefix's size: a frame of payload p takes
// FrameHeaderLen+len(p) bytes on its stream.
const FrameHeaderLen = frameHeaderLen

// messageHeaderLen is the type and version bytes in front of a Message body.
const messageHeaderLen = 2

// DefaultMaxFrame is the payload limit used when a caller passes max <= 0:
// large enough for a pipelined all-reduce part, small enough that a hostile
// length cannot make a peer buffer much.
const DefaultMaxFrame = 16 << 20

// MaxFrame is the largest limit a caller may pass: the length prefix is 32
// bits and lengths are handled as int, so keep within what both represent.
const MaxFrame = 1<<31 - 1

// readChunk bounds how much ReadFrame allocates ahead of bytes that have
// actually arrived: a peer that announces a large frame and stalls costs
// at most this much, not the announced length.
const readChunk = 1 << 20

var (
	// ErrFrameTooLarge reports a frame whose length exceeds the limit of
	// the call that wrote or read it.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrTruncatedFrame reports a reader that ended inside a frame: after
	// part of the length prefix or before all of the payload.
	ErrTruncatedFrame = errors.New("truncated frame")
	// ErrShortMessage reports a frame too short to hold a Message header.
	ErrShortMessage = errors.New("frame shorter than a message header")
)

// Message is a typed, versioned frame. Type says which schema Body follows
// and Version which revision of it; a receiver rejects types and versions
// it does not know rather than guess.
type Message struct {
	Type    uint8
	Version uint8
	Body    []byte
}

// limit returns the effective frame limit for a caller's max.
func limit(max int) int {
	if max <= 0 {
		return DefaultMaxFrame
	}
	if max > MaxFrame {
		return MaxFrame
	}
	return max
}

// WriteFrame writes p as one frame to w. It returns ErrFrameTooLarge,
// writing nothing, when len(p) exceeds max (DefaultMaxFrame if max <= 0).
func WriteFrame(w io.Writer, p []byte, max int) error {
	if len(p) > limit(max) {
		return fmt.Errorf("write %d-byte frame, limit %d: %w", len(p), limit(max), ErrFrameTooLarge)
	}
	var hdr [frameHeaderLen]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(p)))
	return writeParts(w, hdr[:], p)
}

// writeParts writes a header and a payload, coalescing small payloads into
// one Write so that a small frame leaves as one packet.
func writeParts(w io.Writer, hdr, p []byte) error {
	if len(p) <= 4096 {
		buf := make([]byte, 0, len(hdr)+len(p))
		buf = append(append(buf, hdr...), p...)
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("write frame: %w", err)
		}
		return nil
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("write frame header: %w", err)
	}
	if _, err := w.Write(p); err != nil {
		return fmt.Errorf("write %d-byte frame payload: %w", len(p), err)
	}
	return nil
}

// ReadFrame reads one frame from r and returns its payload, stored in buf
// when it fits (the result aliases buf) and in a new slice otherwise.
//
// It returns io.EOF, unwrapped, when r ends cleanly between frames;
// ErrTruncatedFrame when r ends inside one; ErrFrameTooLarge when the
// announced length exceeds max (DefaultMaxFrame if max <= 0), without
// reading or allocating the payload. Memory grows with the bytes that
// actually arrive, so a sender that announces a large frame and stalls
// cannot make the reader allocate the announced size.
func ReadFrame(r io.Reader, buf []byte, max int) ([]byte, error) {
	var hdr [frameHeaderLen]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("read frame header (%d of %d bytes): %w", n, frameHeaderLen, ErrTruncatedFrame)
		}
		return nil, fmt.Errorf("read frame header: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if uint64(size) > uint64(limit(max)) {
		return nil, fmt.Errorf("read %d-byte frame, limit %d: %w", size, limit(max), ErrFrameTooLarge)
	}
	return readPayload(r, buf[:0], int(size))
}

// readPayload reads exactly n bytes from r into buf, reusing buf when it
// has room and otherwise growing it at most readChunk beyond what has
// arrived.
func readPayload(r io.Reader, buf []byte, n int) ([]byte, error) {
	if cap(buf) >= n {
		buf = buf[:n]
		if m, err := io.ReadFull(r, buf); err != nil {
			return nil, payloadErr(m, n, err)
		}
		return buf, nil
	}
	buf = buf[:0]
	for len(buf) < n {
		want := min(n-len(buf), readChunk)
		buf = slices.Grow(buf, want)
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, payloadErr(len(buf), n, err)
		}
	}
	return buf, nil
}

// payloadErr wraps a read error after got of n payload bytes; a reader
// that ended is a truncated frame.
func payloadErr(got, n int, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = ErrTruncatedFrame
	}
	return fmt.Errorf("read frame payload (%d of %d bytes): %w", got, n, err)
}

// WriteMessage writes m as one frame. The limit applies to the whole frame
// payload: header bytes plus body.
func WriteMessage(w io.Writer, m Message, max int) error {
	n := messageHeaderLen + len(m.Body)
	if n > limit(max) {
		return fmt.Errorf("write message type %d with %d-byte body, limit %d: %w", m.Type, len(m.Body), limit(max), ErrFrameTooLarge)
	}
	var hdr [frameHeaderLen + messageHeaderLen]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(n))
	hdr[4], hdr[5] = m.Type, m.Version
	return writeParts(w, hdr[:], m.Body)
}

// ReadMessage reads one frame and parses it as a Message; errors are those
// of ReadFrame and ParseMessage. Body aliases buf when the frame fits in it.
func ReadMessage(r io.Reader, buf []byte, max int) (Message, error) {
	p, err := ReadFrame(r, buf, max)
	if err != nil {
		return Message{}, err
	}
	return ParseMessage(p)
}

// ParseMessage splits a frame payload into a Message. Body aliases p.
func ParseMessage(p []byte) (Message, error) {
	if len(p) < messageHeaderLen {
		return Message{}, fmt.Errorf("parse %d-byte frame: %w", len(p), ErrShortMessage)
	}
	return Message{Type: p[0], Version: p[1], Body: p[messageHeaderLen:]}, nil
}
