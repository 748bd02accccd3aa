package netx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	const max = 3 << 20 // above readChunk, so the growing path runs too
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		size int
		buf  int // capacity of the caller's buffer
	}{
		{"empty", 0, 0},
		{"one byte", 1, 0},
		{"small into buffer", 100, 4096},
		{"coalescing edge", 4096, 0},
		{"above coalescing", 4097, 0},
		{"max no buffer", max, 0},
		{"max into buffer", max, max},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := make([]byte, tc.size)
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			var w bytes.Buffer
			if err := WriteFrame(&w, p, max); err != nil {
				t.Fatal(err)
			}
			if w.Len() != frameHeaderLen+tc.size {
				t.Fatalf("encoded %d bytes, want %d", w.Len(), frameHeaderLen+tc.size)
			}
			got, err := ReadFrame(&w, make([]byte, 0, tc.buf), max)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, p) {
				t.Fatalf("payload differs after round trip (%d bytes)", tc.size)
			}
			if _, err := ReadFrame(&w, nil, max); err != io.EOF {
				t.Fatalf("after the last frame: %v, want io.EOF", err)
			}
		})
	}
}

func TestFrameErrors(t *testing.T) {
	hdr := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	for _, tc := range []struct {
		name  string
		input []byte
		max   int
		want  error
	}{
		{"oversized length", hdr(1 << 30), 1 << 10, ErrFrameTooLarge},
		{"max uint32 length", hdr(1<<32 - 1), 0, ErrFrameTooLarge},
		{"one over the limit", append(hdr(11), make([]byte, 11)...), 10, ErrFrameTooLarge},
		{"partial header", []byte{0, 0}, 0, ErrTruncatedFrame},
		{"missing payload", hdr(5), 0, ErrTruncatedFrame},
		{"partial payload", append(hdr(5), 1, 2, 3), 0, ErrTruncatedFrame},
		{"large partial payload", append(hdr(3<<20), make([]byte, 1<<20+7)...), 4 << 20, ErrTruncatedFrame},
		{"ascii garbage", []byte("GET / HTTP/1.1\r\n\r\n"), 0, ErrFrameTooLarge},
		{"empty input", nil, 0, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tc.input), nil, tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadFrame: %v, want %v", err, tc.want)
			}
		})
	}
	if err := WriteFrame(io.Discard, make([]byte, 11), 10); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("WriteFrame over the limit: %v, want ErrFrameTooLarge", err)
	}
}

// TestOversizedFrameDoesNotAllocate checks that a hostile length costs the
// reader nothing: the announced gigabyte is refused before any payload
// buffer exists.
func TestOversizedFrameDoesNotAllocate(t *testing.T) {
	in := binary.BigEndian.AppendUint32(nil, 1<<30)
	allocated := allocatedBy(func() {
		if _, err := ReadFrame(bytes.NewReader(in), nil, 1<<20); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatal(err)
		}
	})
	// The wrapped error allocates a few hundred bytes; a payload would be 1 GiB.
	if allocated > 4096 {
		t.Fatalf("rejecting a 1 GiB length allocated %d bytes", allocated)
	}
}

// allocatedBy returns the bytes the heap handed out while fn ran. The
// counter is process-wide, so goroutines left by other tests (libp2p hosts
// shutting down) can add to one reading; the least of five runs is fn's own.
func allocatedBy(fn func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fn()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// TestStalledFrameAllocatesWhatArrived checks that a sender announcing a
// frame at the limit and sending little of it cannot make the reader hold
// the announced size.
func TestStalledFrameAllocatesWhatArrived(t *testing.T) {
	in := append(binary.BigEndian.AppendUint32(nil, 256<<20), make([]byte, 100)...)
	allocated := allocatedBy(func() {
		if _, err := ReadFrame(bytes.NewReader(in), nil, 256<<20); !errors.Is(err, ErrTruncatedFrame) {
			t.Fatal(err)
		}
	})
	if allocated > 2*readChunk+4096 {
		t.Fatalf("a 256 MiB announcement with 100 bytes behind it allocated %d bytes", allocated)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Type: 0, Version: 0},
		{Type: 7, Version: 1, Body: []byte("hello")},
		{Type: 255, Version: 255, Body: bytes.Repeat([]byte{0xAB}, 10000)},
	} {
		var w bytes.Buffer
		if err := WriteMessage(&w, m, 1<<20); err != nil {
			t.Fatal(err)
		}
		got, err := ReadMessage(&w, nil, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if got.Type != m.Type || got.Version != m.Version || !bytes.Equal(got.Body, m.Body) {
			t.Fatalf("round trip: got type %d v%d %d bytes, want type %d v%d %d bytes",
				got.Type, got.Version, len(got.Body), m.Type, m.Version, len(m.Body))
		}
	}
	var w bytes.Buffer
	if err := WriteFrame(&w, []byte{9}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMessage(&w, nil, 0); !errors.Is(err, ErrShortMessage) {
		t.Fatalf("one-byte frame as a message: %v, want ErrShortMessage", err)
	}
	if err := WriteMessage(io.Discard, Message{Body: make([]byte, 9)}, 10); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("message over the limit: %v, want ErrFrameTooLarge", err)
	}
}

// FuzzReadFrame feeds arbitrary bytes to the decoder: it must never panic,
// never return more than the limit, and every frame it accepts must
// re-encode to the bytes it consumed.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{}, uint16(64))
	f.Add([]byte{0, 0, 0, 0}, uint16(64))
	f.Add([]byte{0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 1}, uint16(64))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1}, uint16(64))
	f.Add([]byte{0, 0, 0, 2, 7, 1}, uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, max16 uint16) {
		max := int(max16) + 1
		r := bytes.NewReader(in)
		var buf []byte
		for {
			before := len(in) - r.Len()
			p, err := ReadFrame(r, buf, max)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrTruncatedFrame) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error class: %v", err)
				}
				return
			}
			if len(p) > max {
				t.Fatalf("accepted %d bytes over limit %d", len(p), max)
			}
			var w bytes.Buffer
			if err := WriteFrame(&w, p, max); err != nil {
				t.Fatal(err)
			}
			if consumed := in[before : len(in)-r.Len()]; !bytes.Equal(w.Bytes(), consumed) {
				t.Fatalf("re-encoding differs from input")
			}
			if m, err := ParseMessage(p); err == nil && len(m.Body) != len(p)-messageHeaderLen {
				t.Fatalf("message body %d bytes from a %d-byte frame", len(m.Body), len(p))
			}
			buf = p
		}
	})
}
