package allreduce

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
)

func wireSamples() []Msg {
	return []Msg{
		PartMsg{Phase: ReduceScatter, Span: 3, Part: 7, Codec: CodecInt8, Weight: 12.5, Payload: []byte{1, 2, 3, 4, 5}},
		PartMsg{Phase: ReduceScatter, Span: 1, Part: 2, Codec: CodecNone, Weight: 3, Payload: []byte{1, 2, 3, 4},
			Proof: [][32]byte{{1, 2}, {31: 9}, {}}},
		PartMsg{Phase: AllGather, Span: 0, Part: 0, Codec: CodecNone, Payload: []byte{}},
		PartMsg{Phase: AllGather, Span: math.MaxInt32, Part: math.MaxInt32, Codec: CodecBF16, Set: math.MaxUint64, Payload: make([]byte, 4096)},
		ReportMsg{Span: 2},
		ReportMsg{Span: 1, Have: []int{0, 1, 5, 31}},
		ReportMsg{Span: 0, Have: []int{math.MaxInt32}},
		LostMsg{Span: 4, Owner: 2},
		LostMsg{Span: math.MaxInt32, Owner: 0},
	}
}

// TestWireRoundTrip: every message decodes to what was encoded, and the
// encoding is exactly the documented layout's size.
func TestWireRoundTrip(t *testing.T) {
	for _, m := range wireSamples() {
		b, err := EncodeMsg(m)
		if err != nil {
			t.Fatalf("encode %+v: %v", m, err)
		}
		var want int
		switch m := m.(type) {
		case PartMsg:
			want = wireHeaderLen + wirePartFixed + len(m.Payload)
			if len(m.Proof) > 0 {
				want += 4 + 32*len(m.Proof)
			}
		case ReportMsg:
			want = wireHeaderLen + wireReportHead + 4*len(m.Have)
		case LostMsg:
			want = wireHeaderLen + wireLostLen
		}
		if len(b) != want {
			t.Errorf("%T encodes to %d bytes, layout says %d", m, len(b), want)
		}
		got, err := DecodeMsg(b, -1)
		if err != nil {
			t.Fatalf("decode %+v: %v", m, err)
		}
		if p, ok := m.(PartMsg); ok && len(p.Payload) == 0 {
			p.Payload = got.(PartMsg).Payload // empty vs nil is not on the wire
			m = p
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
		again, _ := EncodeMsg(got)
		if !bytes.Equal(again, b) {
			t.Errorf("%T: re-encoding differs", m)
		}
	}
}

// TestWireRejects: every malformed input is an error of the right kind,
// never a panic and never a plausible message.
func TestWireRejects(t *testing.T) {
	part, _ := EncodeMsg(PartMsg{Phase: ReduceScatter, Weight: 1, Payload: []byte{9, 9, 9, 9}})
	rep, _ := EncodeMsg(ReportMsg{Span: 1, Have: []int{1, 2}})
	proved, _ := EncodeMsg(PartMsg{Phase: ReduceScatter, Weight: 1, Payload: []byte{9, 9, 9, 9}, Proof: [][32]byte{{1}, {2}}})
	pc := len(proved) - 4 - 64 // where the proof's count is
	mod := func(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	cases := []struct {
		name string
		b    []byte
		max  int
		want error
	}{
		{"empty", nil, -1, ErrWireFormat},
		{"one byte", []byte{wireVersion}, -1, ErrWireFormat},
		{"version", mod(part, func(b []byte) []byte { b[0] = 1; return b }), -1, ErrWireVersion},
		{"unknown type", mod(part, func(b []byte) []byte { b[1] = 9; return b }), -1, ErrWireType},
		{"lost truncated", []byte{wireVersion, wireLost, 1, 0, 0, 0, 2, 0, 0}, -1, ErrWireFormat},
		{"lost trailing", []byte{wireVersion, wireLost, 1, 0, 0, 0, 2, 0, 0, 0, 0}, -1, ErrWireFormat},
		{"lost owner over int32", []byte{wireVersion, wireLost, 1, 0, 0, 0, 0, 0, 0, 0x80}, -1, ErrWireFormat},
		{"phase 0", mod(part, func(b []byte) []byte { b[2] = 0; return b }), -1, ErrWireFormat},
		{"part truncated header", part[:10], -1, ErrWireFormat},
		{"part truncated payload", part[:len(part)-1], -1, ErrWireFormat},
		{"part trailing", append(append([]byte(nil), part...), 0), -1, ErrWireFormat},
		{"part over limit", part, 3, ErrWireFormat},
		{"span over int32", mod(part, func(b []byte) []byte { b[7] = 0x80; return b }), -1, ErrWireFormat},
		{"NaN weight", mod(part, func(b []byte) []byte { copy(b[12:], []byte{1, 0, 0, 0, 0, 0, 0xf8, 0x7f}); return b }), -1, ErrWireFormat},
		{"Inf weight", mod(part, func(b []byte) []byte { copy(b[12:], []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x7f}); return b }), -1, ErrWireFormat},
		{"reduce-scatter with a set", mod(part, func(b []byte) []byte { b[20] = 1; return b }), -1, ErrWireFormat},
		{"all-gather with a weight", mod(part, func(b []byte) []byte { b[2] = byte(AllGather); return b }), -1, ErrWireFormat},
		{"proof truncated", proved[:len(proved)-1], -1, ErrWireFormat},
		{"proof trailing", append(append([]byte(nil), proved...), 0), -1, ErrWireFormat},
		{"proof count short", mod(proved, func(b []byte) []byte { b[pc] = 1; return b }), -1, ErrWireFormat},
		{"proof count huge", mod(proved, func(b []byte) []byte { copy(b[pc:], []byte{0xff, 0xff, 0xff, 0xff}); return b }), -1, ErrWireFormat},
		{"proof empty", mod(proved[:pc+4], func(b []byte) []byte { b[pc] = 0; return b }), -1, ErrWireFormat},
		{"proof without its count", proved[:pc], -1, ErrWireFormat},
		{"payload past the proof", mod(proved, func(b []byte) []byte { b[28] = 200; return b }), -1, ErrWireFormat},
		{"all-gather with a proof", mod(proved, func(b []byte) []byte { b[2] = byte(AllGather); clear(b[12:20]); return b }), -1, ErrWireFormat},
		{"proved part over limit", proved, 3, ErrWireFormat},
		{"report truncated", rep[:len(rep)-2], -1, ErrWireFormat},
		{"report trailing", append(append([]byte(nil), rep...), 0, 0, 0, 0), -1, ErrWireFormat},
		{"report huge count", mod(rep, func(b []byte) []byte { copy(b[6:], []byte{0xff, 0xff, 0xff, 0xff}); return b }), -1, ErrWireFormat},
		{"report unsorted", mod(rep, func(b []byte) []byte { b[10], b[14] = 2, 1; return b }), -1, ErrWireFormat},
		{"report duplicate", mod(rep, func(b []byte) []byte { b[14] = 1; return b }), -1, ErrWireFormat},
	}
	for _, c := range cases {
		m, err := DecodeMsg(c.b, c.max)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %+v, %v; want %v", c.name, m, err, c.want)
		}
	}
}

// TestWireEncodeRejects: EncodeMsg refuses what DecodeMsg would reject, so
// a bug on the sender surfaces at the sender.
func TestWireEncodeRejects(t *testing.T) {
	for _, m := range []Msg{
		PartMsg{Phase: 0},
		PartMsg{Phase: AllGather, Span: -1},
		PartMsg{Phase: AllGather, Weight: math.Inf(1)},
		PartMsg{Phase: AllGather, Weight: 1},
		PartMsg{Phase: ReduceScatter, Weight: 1, Set: 7},
		PartMsg{Phase: AllGather, Proof: [][32]byte{{}}},
		PartMsg{Phase: ReduceScatter, Weight: 1, Proof: make([][32]byte, maxProofLen+1)},
		ReportMsg{Span: -2},
		ReportMsg{Have: []int{2, 1}},
		LostMsg{Span: -1},
		nil,
	} {
		if b, err := EncodeMsg(m); err == nil {
			t.Errorf("EncodeMsg(%+v) = %x, want an error", m, b)
		}
	}
}

// FuzzDecodeMsg: arbitrary bytes never panic, never yield a payload over
// the limit or more members than the input holds, and whatever decodes
// re-encodes to the same bytes (one encoding per message).
func FuzzDecodeMsg(f *testing.F) {
	for _, m := range wireSamples() {
		b, _ := EncodeMsg(m)
		f.Add(b, 64)
	}
	f.Add([]byte{1, 2, 0, 0, 0, 0, 255, 255, 255, 255}, 0)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		m, err := DecodeMsg(b, max)
		if err != nil {
			return
		}
		switch m := m.(type) {
		case PartMsg:
			if max >= 0 && len(m.Payload) > max {
				t.Fatalf("payload %d bytes over limit %d", len(m.Payload), max)
			}
		case ReportMsg:
			if 4*len(m.Have) > len(b) {
				t.Fatalf("%d members from %d bytes", len(m.Have), len(b))
			}
		}
		again, err := EncodeMsg(m)
		if err != nil {
			t.Fatalf("decoded %+v does not re-encode: %v", m, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, again)
		}
	})
}
