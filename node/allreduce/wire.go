package allreduce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Wire layout of a round message, all integers little-endian:
//
//	version u8 | type u8 | body
//
//	PartMsg   (type 1): phase u8 | codec u8 | span u32 | part u32 |
//	                    weight f64 | set u64 | payload length u32 | payload
//	ReportMsg (type 2): span u32 | count u32 | count × member u32 (strictly ascending)
//	LostMsg   (type 3): span u32 | owner u32
//	PartMsg with a proof (type 4): the type 1 body | count u32 (1..64) |
//	                    count × hash [32]byte; reduce-scatter only
//
// A part without a proof is type 1, so the messages of rounds that commit
// to nothing read as they did before commitments.
//
// Fixed-width fields give every message exactly one encoding, so a decoder
// has nothing non-canonical to accept. The message travels inside a frame
// of the transport's (node/allreduce/p2p: a netx frame), which carries the
// total length.
const (
	wireVersion    = 2 // 2: all-gather parts name their contributor set
	wirePart       = 1
	wireReport     = 2
	wireLost       = 3
	wirePartProof  = 4
	wireLostLen    = 4 + 4
	wireHeaderLen  = 2
	wirePartFixed  = 1 + 1 + 4 + 4 + 8 + 8 + 4
	wireReportHead = 4 + 4
)

var (
	// ErrWireVersion reports a message of a wire version this build does
	// not speak.
	ErrWireVersion = errors.New("allreduce: unknown wire version")
	// ErrWireType reports a message type this build does not know, e.g. one
	// a newer peer added; the transport logs and drops it.
	ErrWireType = errors.New("allreduce: unknown message type")
	// ErrWireFormat reports a malformed message: truncated, trailing bytes,
	// a field out of range.
	ErrWireFormat = errors.New("allreduce: malformed message")
)

// MaxFrame is the largest encoded message a round of cfg sends: a transport
// reads frames up to this size.
func MaxFrame(cfg RoundConfig) int {
	payload := max(4*cfg.PartSize, cfg.Codec.EncodedLen(cfg.PartSize))
	if p := cfg.maxProof(); p > 0 {
		payload += 4 + 32*p
	}
	report := wireReportHead + 4*len(cfg.Group.Members)
	return wireHeaderLen + max(wirePartFixed+payload, report)
}

// wireMaxIndex bounds span, part and member numbers so that they fit an int
// on every platform.
const wireMaxIndex = math.MaxInt32

// EncodeMsg returns m's wire encoding. It fails for message types it does
// not know and for fields a decoder would reject.
func EncodeMsg(m Msg) ([]byte, error) {
	return AppendMsg(nil, m)
}

// AppendMsg appends m's wire encoding to dst and returns the extended
// slice, so a sender can reuse one buffer for every message; on error dst
// is returned unchanged. Errors are EncodeMsg's.
func AppendMsg(dst []byte, m Msg) ([]byte, error) {
	switch m := m.(type) {
	case PartMsg:
		return appendPart(dst, m)
	case ReportMsg:
		return appendReport(dst, m)
	case LostMsg:
		if !inIndexRange(m.Span) || !inIndexRange(m.Owner) {
			return dst, fmt.Errorf("encode lost: span %d, owner %d: %w", m.Span, m.Owner, ErrWireFormat)
		}
		b := append(dst, wireVersion, wireLost)
		b = binary.LittleEndian.AppendUint32(b, uint32(m.Span))
		return binary.LittleEndian.AppendUint32(b, uint32(m.Owner)), nil
	}
	return dst, fmt.Errorf("encode %T: %w", m, ErrWireType)
}

func appendPart(dst []byte, m PartMsg) ([]byte, error) {
	switch {
	case m.Phase != ReduceScatter && m.Phase != AllGather:
		return dst, fmt.Errorf("encode part: %v: %w", m.Phase, ErrWireFormat)
	case !inIndexRange(m.Span) || !inIndexRange(m.Part):
		return dst, fmt.Errorf("encode part: span %d, part %d: %w", m.Span, m.Part, ErrWireFormat)
	case math.IsNaN(m.Weight) || math.IsInf(m.Weight, 0):
		return dst, fmt.Errorf("encode part: weight %v: %w", m.Weight, ErrWireFormat)
	case (m.Phase == ReduceScatter && m.Set != 0) || (m.Phase == AllGather && math.Float64bits(m.Weight) != 0):
		return dst, fmt.Errorf("encode part: %v with weight %v and set %#x: %w", m.Phase, m.Weight, m.Set, ErrWireFormat)
	case uint64(len(m.Payload)) > math.MaxUint32:
		return dst, fmt.Errorf("encode part: %d-byte payload: %w", len(m.Payload), ErrWireFormat)
	case len(m.Proof) > maxProofLen || (len(m.Proof) > 0 && m.Phase != ReduceScatter):
		return dst, fmt.Errorf("encode part: %v with a proof of %d hashes: %w", m.Phase, len(m.Proof), ErrWireFormat)
	}
	typ, proof := byte(wirePart), 0
	if len(m.Proof) > 0 {
		typ, proof = wirePartProof, 4+32*len(m.Proof)
	}
	all, b := codecAppend(slices.Grow(dst, wireHeaderLen+wirePartFixed+len(m.Payload)+proof), wireHeaderLen+wirePartFixed)
	b[0], b[1], b[2], b[3] = wireVersion, typ, byte(m.Phase), byte(m.Codec)
	binary.LittleEndian.PutUint32(b[4:], uint32(m.Span))
	binary.LittleEndian.PutUint32(b[8:], uint32(m.Part))
	binary.LittleEndian.PutUint64(b[12:], math.Float64bits(m.Weight))
	binary.LittleEndian.PutUint64(b[20:], m.Set)
	binary.LittleEndian.PutUint32(b[28:], uint32(len(m.Payload)))
	b = append(all, m.Payload...)
	if len(m.Proof) > 0 {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Proof)))
		for _, h := range m.Proof {
			b = append(b, h[:]...)
		}
	}
	return b, nil
}

func appendReport(dst []byte, m ReportMsg) ([]byte, error) {
	if !inIndexRange(m.Span) {
		return dst, fmt.Errorf("encode report: span %d: %w", m.Span, ErrWireFormat)
	}
	all, b := codecAppend(dst, wireHeaderLen+wireReportHead)
	b[0], b[1] = wireVersion, wireReport
	binary.LittleEndian.PutUint32(b[2:], uint32(m.Span))
	binary.LittleEndian.PutUint32(b[6:], uint32(len(m.Have)))
	for i, h := range m.Have {
		if !inIndexRange(h) || (i > 0 && h <= m.Have[i-1]) {
			return dst, fmt.Errorf("encode report: members %v not ascending in range: %w", m.Have, ErrWireFormat)
		}
		all = binary.LittleEndian.AppendUint32(all, uint32(h))
	}
	return all, nil
}

func inIndexRange(v int) bool { return v >= 0 && int64(v) <= wireMaxIndex }

// DecodeMsg parses one encoded message. A PartMsg's Payload aliases b. It
// rejects payloads longer than maxPayload bytes (no limit if maxPayload <
// 0), and never allocates more
// than len(b) justifies.
func DecodeMsg(b []byte, maxPayload int) (Msg, error) {
	if len(b) < wireHeaderLen {
		return nil, fmt.Errorf("decode %d-byte message: %w", len(b), ErrWireFormat)
	}
	if b[0] != wireVersion {
		return nil, fmt.Errorf("decode message version %d: %w", b[0], ErrWireVersion)
	}
	body := b[wireHeaderLen:]
	switch b[1] {
	case wirePart:
		return decodePart(body, maxPayload, false)
	case wirePartProof:
		return decodePart(body, maxPayload, true)
	case wireReport:
		return decodeReport(body)
	case wireLost:
		return decodeLost(body)
	}
	return nil, fmt.Errorf("decode message type %d: %w", b[1], ErrWireType)
}

func decodePart(b []byte, maxPayload int, proof bool) (Msg, error) {
	if len(b) < wirePartFixed {
		return nil, fmt.Errorf("decode part: %d bytes, want >= %d: %w", len(b), wirePartFixed, ErrWireFormat)
	}
	m := PartMsg{Phase: Phase(b[0]), Codec: CodecID(b[1])}
	if m.Phase != ReduceScatter && m.Phase != AllGather {
		return nil, fmt.Errorf("decode part: %v: %w", m.Phase, ErrWireFormat)
	}
	span, part := binary.LittleEndian.Uint32(b[2:]), binary.LittleEndian.Uint32(b[6:])
	if span > wireMaxIndex || part > wireMaxIndex {
		return nil, fmt.Errorf("decode part: span %d, part %d: %w", span, part, ErrWireFormat)
	}
	m.Span, m.Part = int(span), int(part)
	m.Weight = math.Float64frombits(binary.LittleEndian.Uint64(b[10:]))
	if math.IsNaN(m.Weight) || math.IsInf(m.Weight, 0) {
		return nil, fmt.Errorf("decode part: weight %v: %w", m.Weight, ErrWireFormat)
	}
	m.Set = binary.LittleEndian.Uint64(b[18:])
	if (m.Phase == ReduceScatter && m.Set != 0) || (m.Phase == AllGather && math.Float64bits(m.Weight) != 0) {
		return nil, fmt.Errorf("decode part: %v with weight %v and set %#x: %w", m.Phase, m.Weight, m.Set, ErrWireFormat)
	}
	n := uint64(binary.LittleEndian.Uint32(b[26:]))
	rest := b[wirePartFixed:]
	if proof {
		if n > uint64(len(rest)) {
			return nil, fmt.Errorf("decode part: payload length %d, %d bytes follow: %w", n, len(rest), ErrWireFormat)
		}
		var err error
		if m.Proof, err = decodeProof(rest[n:]); err != nil {
			return nil, err
		}
		if m.Phase != ReduceScatter {
			return nil, fmt.Errorf("decode part: %v with a proof: %w", m.Phase, ErrWireFormat)
		}
		rest = rest[:n]
	}
	if n != uint64(len(rest)) {
		return nil, fmt.Errorf("decode part: payload length %d, %d bytes follow: %w", n, len(rest), ErrWireFormat)
	}
	if maxPayload >= 0 && n > uint64(maxPayload) {
		return nil, fmt.Errorf("decode part: %d-byte payload, limit %d: %w", n, maxPayload, ErrWireFormat)
	}
	m.Payload = rest
	return m, nil
}

// decodeProof parses a part's trailing proof: count u32, then exactly count
// hashes, 1 <= count <= maxProofLen.
func decodeProof(b []byte) ([][32]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("decode part: %d bytes for a proof: %w", len(b), ErrWireFormat)
	}
	count := uint64(binary.LittleEndian.Uint32(b))
	if count < 1 || count > maxProofLen || count*32 != uint64(len(b)-4) {
		return nil, fmt.Errorf("decode part: proof of %d hashes in %d bytes: %w", count, len(b)-4, ErrWireFormat)
	}
	proof := make([][32]byte, count)
	for i := range proof {
		copy(proof[i][:], b[4+32*i:])
	}
	return proof, nil
}

func decodeReport(b []byte) (Msg, error) {
	if len(b) < wireReportHead {
		return nil, fmt.Errorf("decode report: %d bytes, want >= %d: %w", len(b), wireReportHead, ErrWireFormat)
	}
	span, count := binary.LittleEndian.Uint32(b), uint64(binary.LittleEndian.Uint32(b[4:]))
	rest := b[wireReportHead:]
	if span > wireMaxIndex {
		return nil, fmt.Errorf("decode report: span %d: %w", span, ErrWireFormat)
	}
	// Checked before allocating, so a huge count costs nothing.
	if count*4 != uint64(len(rest)) {
		return nil, fmt.Errorf("decode report: %d members, %d bytes follow: %w", count, len(rest), ErrWireFormat)
	}
	m := ReportMsg{Span: int(span)}
	if count > 0 {
		m.Have = make([]int, count)
	}
	for i := range m.Have {
		h := binary.LittleEndian.Uint32(rest[4*i:])
		if h > wireMaxIndex || (i > 0 && int(h) <= m.Have[i-1]) {
			return nil, fmt.Errorf("decode report: member %d at %d not ascending in range: %w", h, i, ErrWireFormat)
		}
		m.Have[i] = int(h)
	}
	return m, nil
}

func decodeLost(b []byte) (Msg, error) {
	if len(b) != wireLostLen {
		return nil, fmt.Errorf("decode lost: %d bytes, want %d: %w", len(b), wireLostLen, ErrWireFormat)
	}
	span, owner := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
	if span > wireMaxIndex || owner > wireMaxIndex {
		return nil, fmt.Errorf("decode lost: span %d, owner %d: %w", span, owner, ErrWireFormat)
	}
	return LostMsg{Span: int(span), Owner: int(owner)}, nil
}
