package state

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dtrain-dev/dtrain/netx"
)

// Wire constants; see the package doc for the protocol.
const (
	wireVersion = 1

	typeRange    = 1
	typeManifest = 2
	typeData     = 3
	typeHashes   = 4
	typeRefused  = 5

	rangeReqLen    = 32 + 8 + 4
	manifestReqLen = 32 + 4
	hashesHeadLen  = 4 + 4
	maxReasonLen   = 200

	// requestFrameMax bounds what a donor reads: the larger request.
	requestFrameMax = 2 + rangeReqLen
	// refusedFrameMax bounds a refusal frame.
	refusedFrameMax = 2 + 1 + maxReasonLen
)

// Sizes a joiner and a donor agree on.
const (
	// MaxRequest is the most bytes one range request may ask for.
	MaxRequest = 4 << 20
	// MinChunk is the smallest chunk a manifest may be asked for; it
	// bounds a manifest to 32 bytes per MinChunk of state. Chunk sizes are
	// powers of two from MinChunk to MaxRequest.
	MinChunk = 64 << 10
	// dataFrame is the most state bytes in one data frame.
	dataFrame = 1 << 20
)

// refusal says why a donor did not serve a request.
type refusal uint8

const (
	refusedBusy     refusal = 1 // serving MaxConcurrent downloads: try later
	refusedNotFound refusal = 2 // no current offer has this hash
	refusedBad      refusal = 3 // the request is malformed or out of range
)

func (r refusal) String() string {
	switch r {
	case refusedBusy:
		return "busy"
	case refusedNotFound:
		return "not found"
	case refusedBad:
		return "bad request"
	}
	return fmt.Sprintf("refusal(%d)", uint8(r))
}

// Sentinel errors a Fetch caller may branch on.
var (
	// ErrBusy reports a donor serving as many downloads as it allows.
	ErrBusy = errors.New("donor busy")
	// ErrNotFound reports a donor that does not offer the wanted state.
	ErrNotFound = errors.New("state not found at donor")
	// ErrRefused reports a donor that rejected a request as malformed.
	ErrRefused = errors.New("request refused by donor")
	// ErrProtocol reports a reply that breaks the protocol.
	ErrProtocol = errors.New("state protocol violation")
)

func (r refusal) err() error {
	switch r {
	case refusedBusy:
		return ErrBusy
	case refusedNotFound:
		return ErrNotFound
	}
	return ErrRefused
}

// rangeReq asks for length bytes at offset of the blob with hash.
type rangeReq struct {
	hash   [32]byte
	offset uint64
	length uint32
}

func (r rangeReq) message() netx.Message {
	b := make([]byte, 0, rangeReqLen)
	b = append(b, r.hash[:]...)
	b = binary.BigEndian.AppendUint64(b, r.offset)
	b = binary.BigEndian.AppendUint32(b, r.length)
	return netx.Message{Type: typeRange, Version: wireVersion, Body: b}
}

// manifestReq asks for the per-chunk hashes of the blob with hash.
type manifestReq struct {
	hash  [32]byte
	chunk uint32
}

func (r manifestReq) message() netx.Message {
	b := append(make([]byte, 0, manifestReqLen), r.hash[:]...)
	b = binary.BigEndian.AppendUint32(b, r.chunk)
	return netx.Message{Type: typeManifest, Version: wireVersion, Body: b}
}

// request is a decoded request: exactly one of rng and man is set.
type request struct {
	rng *rangeReq
	man *manifestReq
}

// parseRequest decodes a request message, checking type, version and
// exact length; bounds against the offer are the donor's job.
func parseRequest(m netx.Message) (request, error) {
	if m.Version != wireVersion {
		return request{}, fmt.Errorf("%w: request version %d, want %d", ErrProtocol, m.Version, wireVersion)
	}
	switch m.Type {
	case typeRange:
		if len(m.Body) != rangeReqLen {
			return request{}, fmt.Errorf("%w: range request of %d bytes, want %d", ErrProtocol, len(m.Body), rangeReqLen)
		}
		r := &rangeReq{offset: binary.BigEndian.Uint64(m.Body[32:40]), length: binary.BigEndian.Uint32(m.Body[40:])}
		copy(r.hash[:], m.Body)
		return request{rng: r}, nil
	case typeManifest:
		if len(m.Body) != manifestReqLen {
			return request{}, fmt.Errorf("%w: manifest request of %d bytes, want %d", ErrProtocol, len(m.Body), manifestReqLen)
		}
		r := &manifestReq{chunk: binary.BigEndian.Uint32(m.Body[32:])}
		copy(r.hash[:], m.Body)
		return request{man: r}, nil
	}
	return request{}, fmt.Errorf("%w: request type %d", ErrProtocol, m.Type)
}

func refusedMessage(r refusal, reason string) netx.Message {
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	return netx.Message{Type: typeRefused, Version: wireVersion, Body: append([]byte{byte(r)}, reason...)}
}

// refusedError turns a refusal message into an error wrapping ErrBusy,
// ErrNotFound or ErrRefused, with the donor's reason (made printable).
func refusedError(m netx.Message) error {
	if len(m.Body) < 1 || m.Version != wireVersion {
		return fmt.Errorf("%w: malformed refusal", ErrProtocol)
	}
	r := refusal(m.Body[0])
	reason := []rune(string(m.Body[1:]))
	for i, c := range reason {
		if c < 0x20 || c == 0x7f {
			reason[i] = '?'
		}
	}
	return fmt.Errorf("%w (%s): %s", r.err(), r, string(reason))
}

// chunkCount is how many chunks of chunk bytes cover size bytes.
func chunkCount(size int64, chunk int) int {
	return int((size + int64(chunk) - 1) / int64(chunk))
}

// manifestFrameLen is the frame payload of a manifest of count hashes.
func manifestFrameLen(count int) int { return 2 + hashesHeadLen + 32*count }

func hashesMessage(chunk int, hashes [][32]byte) netx.Message {
	b := make([]byte, 0, hashesHeadLen+32*len(hashes))
	b = binary.BigEndian.AppendUint32(b, uint32(chunk))
	b = binary.BigEndian.AppendUint32(b, uint32(len(hashes)))
	for _, h := range hashes {
		b = append(b, h[:]...)
	}
	return netx.Message{Type: typeHashes, Version: wireVersion, Body: b}
}

// parseHashes decodes a manifest reply for a blob of size bytes in chunks
// of chunk bytes; anything but exactly the expected count is an error.
func parseHashes(m netx.Message, size int64, chunk int) ([][32]byte, error) {
	if m.Type == typeRefused {
		return nil, refusedError(m)
	}
	want := chunkCount(size, chunk)
	if m.Type != typeHashes || m.Version != wireVersion || len(m.Body) != hashesHeadLen+32*want {
		return nil, fmt.Errorf("%w: manifest reply type %d v%d of %d bytes, want %d", ErrProtocol, m.Type, m.Version, len(m.Body), hashesHeadLen+32*want)
	}
	gotChunk, gotCount := binary.BigEndian.Uint32(m.Body), binary.BigEndian.Uint32(m.Body[4:])
	if int64(gotChunk) != int64(chunk) || int64(gotCount) != int64(want) {
		return nil, fmt.Errorf("%w: manifest of %d chunks of %d bytes, want %d of %d", ErrProtocol, gotCount, gotChunk, want, chunk)
	}
	hashes := make([][32]byte, want)
	for i := range hashes {
		copy(hashes[i][:], m.Body[hashesHeadLen+32*i:])
	}
	return hashes, nil
}

// validChunk reports whether chunk is a manifest chunk size both sides
// accept: a power of two from MinChunk to MaxRequest.
func validChunk(chunk int) bool {
	return chunk >= MinChunk && chunk <= MaxRequest && chunk&(chunk-1) == 0
}
