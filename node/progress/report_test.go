package progress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func sampleReport() Report {
	r := Report{
		Peer: "12D3KooWpeer", Epoch: 7, Samples: 4096, SamplesPerSec: 123.5,
		HasLoss: true, Loss: 3.25, Offers: true, Time: 1_700_000_000_123,
	}
	for i := range r.StateHash {
		r.StateHash[i] = byte(i + 1)
	}
	return r
}

func randomReport(rng *rand.Rand) Report {
	r := Report{
		Peer:          strings.Repeat("p", 1+rng.IntN(MaxPeerLen)),
		Epoch:         rng.Uint64(),
		Samples:       rng.Uint64(),
		SamplesPerSec: rng.Float64() * math.Pow(10, float64(rng.IntN(12))),
		Offers:        rng.IntN(2) == 0,
		Time:          rng.Int64N(MaxTime + 1),
	}
	if rng.IntN(2) == 0 {
		r.HasLoss, r.Loss = true, float32(rng.NormFloat64()*5)
	}
	if rng.IntN(3) > 0 {
		for i := range r.StateHash {
			r.StateHash[i] = byte(rng.IntN(256))
		}
	}
	return r
}

func TestReportRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []Report{
		sampleReport(),
		{Peer: "a"}, // every field zero but the id
		{Peer: strings.Repeat("x", MaxPeerLen), Epoch: math.MaxUint64, Samples: math.MaxUint64,
			SamplesPerSec: math.MaxFloat64, HasLoss: true, Loss: -math.MaxFloat32, Time: MaxTime},
	}
	for range 500 {
		cases = append(cases, randomReport(rng))
	}
	for _, want := range cases {
		b, err := want.Marshal()
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", want, err)
		}
		if len(b) != fixedSize+len(want.Peer) || len(b) > MaxSize {
			t.Fatalf("encoding of %d bytes for a %d-byte id", len(b), len(want.Peer))
		}
		var got Report
		if err := got.Unmarshal(b); err != nil {
			t.Fatalf("Unmarshal(Marshal(%+v)): %v", want, err)
		}
		if got != want {
			t.Fatalf("round trip: got %+v, want %+v", got, want)
		}
	}
}

// TestReportLayout pins the wire format: other implementations read it.
func TestReportLayout(t *testing.T) {
	r := Report{Peer: "ab", Epoch: 1, Samples: 2, SamplesPerSec: 0.5, HasLoss: true, Loss: 1, Offers: true, Time: 3}
	r.StateHash[0], r.StateHash[31] = 0xAA, 0xBB
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{Version, flagOffers | flagHasLoss, 2, 'a', 'b'}
	want = binary.LittleEndian.AppendUint64(want, 1)
	want = binary.LittleEndian.AppendUint64(want, 2)
	want = binary.LittleEndian.AppendUint64(want, math.Float64bits(0.5))
	want = binary.LittleEndian.AppendUint32(want, math.Float32bits(1))
	want = append(want, r.StateHash[:]...)
	want = binary.LittleEndian.AppendUint64(want, 3)
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding\n got %x\nwant %x", b, want)
	}
}

func TestReportRejects(t *testing.T) {
	good, err := sampleReport().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	peerEnd := 3 + len(sampleReport().Peer)
	patch := func(off int, v []byte) []byte {
		b := bytes.Clone(good)
		copy(b[off:], v)
		return b
	}
	f64 := func(x float64) []byte { return binary.LittleEndian.AppendUint64(nil, math.Float64bits(x)) }
	f32 := func(x float32) []byte { return binary.LittleEndian.AppendUint32(nil, math.Float32bits(x)) }
	long := append([]byte{Version, 0, MaxPeerLen + 1}, make([]byte, fixedSize-3+MaxPeerLen+1)...)
	for i := 3; i < 3+MaxPeerLen+1; i++ {
		long[i] = 'x'
	}
	noLoss := patch(1, []byte{flagOffers}) // loss 3.25 stays without HasLoss

	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrBadReport},
		{"version 0", patch(0, []byte{0}), ErrVersion},
		{"version 2", patch(0, []byte{2}), ErrVersion},
		{"unknown flag", patch(1, []byte{0x04}), ErrBadReport},
		{"trailing byte", append(bytes.Clone(good), 0), ErrBadReport},
		{"empty peer id", append([]byte{Version, 0, 0}, make([]byte, fixedSize-3)...), ErrBadReport},
		{"peer id too long", long, ErrBadReport},
		{"NaN rate", patch(peerEnd+16, f64(math.NaN())), ErrBadReport},
		{"+Inf rate", patch(peerEnd+16, f64(math.Inf(1))), ErrBadReport},
		{"negative rate", patch(peerEnd+16, f64(-1)), ErrBadReport},
		{"NaN loss", patch(peerEnd+24, f32(float32(math.NaN()))), ErrBadReport},
		{"Inf loss", patch(peerEnd+24, f32(float32(math.Inf(-1)))), ErrBadReport},
		{"loss without HasLoss", noLoss, ErrBadReport},
		{"negative time", patch(peerEnd+60, binary.LittleEndian.AppendUint64(nil, math.MaxUint64)), ErrBadReport},
		{"time past MaxTime", patch(peerEnd+60, binary.LittleEndian.AppendUint64(nil, MaxTime+1)), ErrBadReport},
	}
	for n := 1; n < len(good); n++ {
		cases = append(cases, struct {
			name string
			b    []byte
			want error
		}{"truncated", good[:n], ErrBadReport})
	}
	for _, c := range cases {
		r := sampleReport()
		r.Peer = "untouched"
		if err := r.Unmarshal(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s (%d bytes): err %v, want %v", c.name, len(c.b), err, c.want)
		}
		if r.Peer != "untouched" {
			t.Errorf("%s: a failed Unmarshal changed the report", c.name)
		}
	}
}

func TestMarshalRejects(t *testing.T) {
	cases := map[string]func(*Report){
		"empty peer":     func(r *Report) { r.Peer = "" },
		"long peer":      func(r *Report) { r.Peer = strings.Repeat("x", MaxPeerLen+1) },
		"NaN rate":       func(r *Report) { r.SamplesPerSec = math.NaN() },
		"Inf rate":       func(r *Report) { r.SamplesPerSec = math.Inf(1) },
		"negative rate":  func(r *Report) { r.SamplesPerSec = -0.5 },
		"NaN loss":       func(r *Report) { r.Loss = float32(math.NaN()) },
		"stray loss":     func(r *Report) { r.HasLoss = false },
		"negative time":  func(r *Report) { r.Time = -1 },
		"time too large": func(r *Report) { r.Time = MaxTime + 1 },
	}
	for name, edit := range cases {
		r := sampleReport()
		edit(&r)
		if b, err := r.Marshal(); !errors.Is(err, ErrBadReport) || b != nil {
			t.Errorf("%s: Marshal = %x, %v; want nil, ErrBadReport", name, b, err)
		}
	}
}

// TestUnmarshalReport: a report decodes only from the peer it names, and a
// malformed one is refused whoever sent it.
func TestUnmarshalReport(t *testing.T) {
	want := sampleReport()
	b, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := UnmarshalReport(want.Peer, b); err != nil || got != want {
		t.Fatalf("from its author: %+v, %v", got, err)
	}
	if _, err := UnmarshalReport("12D3KooWother", b); !errors.Is(err, ErrBadReport) {
		t.Fatalf("from another peer: %v, want ErrBadReport", err)
	}
	if _, err := UnmarshalReport(want.Peer, b[:len(b)-1]); !errors.Is(err, ErrBadReport) {
		t.Fatalf("truncated: %v, want ErrBadReport", err)
	}
}
