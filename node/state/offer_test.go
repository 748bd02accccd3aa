package state

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestOfferRoundTrip(t *testing.T) {
	offers := []Offer{
		{Run: "r", Epoch: 0, Size: 1},
		{Run: "gpt2-small_run.1", Epoch: 1<<64 - 1, Hash: [32]byte{1, 2, 3, 31: 0xff}, Size: 1 << 40},
		{Run: strings.Repeat("x", 64), Epoch: 42, Size: 24 << 20},
	}
	for _, o := range offers {
		b, err := o.Marshal()
		if err != nil {
			t.Fatalf("marshal %v: %v", o, err)
		}
		if len(b) != offerFixedLen+len(o.Run) {
			t.Fatalf("%v: %d bytes, want %d", o, len(b), offerFixedLen+len(o.Run))
		}
		got, err := UnmarshalOffer(b)
		if err != nil || got != o {
			t.Fatalf("round trip of %v: %v, %v", o, got, err)
		}
	}
}

func TestOfferRejects(t *testing.T) {
	good, err := Offer{Run: "run", Epoch: 7, Size: 100}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", good[:offerFixedLen-1]},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"truncated run", good[:len(good)-1]},
		{"version", mut(func(b []byte) []byte { b[0] = 2; return b })},
		{"zero size", mut(func(b []byte) []byte { clear(b[9:17]); return b })},
		{"negative size", mut(func(b []byte) []byte { b[9] = 0x80; return b })},
		{"bad run char", mut(func(b []byte) []byte { b[len(b)-1] = '/'; return b })},
		{"empty run", mut(func(b []byte) []byte { b[49] = 0; return b[:offerFixedLen] })},
	}
	for _, c := range cases {
		if o, err := UnmarshalOffer(c.b); !errors.Is(err, ErrBadOffer) {
			t.Errorf("%s: got %v, %v; want ErrBadOffer", c.name, o, err)
		}
	}
	for _, o := range []Offer{{Run: "", Size: 1}, {Run: "r", Size: 0}, {Run: "a b", Size: 1}, {Run: strings.Repeat("x", 65), Size: 1}} {
		if _, err := o.Marshal(); !errors.Is(err, ErrBadOffer) {
			t.Errorf("marshal %+v: %v, want ErrBadOffer", o, err)
		}
	}
}

func FuzzUnmarshalOffer(f *testing.F) {
	seed, _ := Offer{Run: "run-1", Epoch: 3, Hash: [32]byte{9}, Size: 1 << 20}.Marshal()
	f.Add(seed)
	f.Add([]byte{})
	f.Add(append(bytes.Clone(seed), 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := UnmarshalOffer(b)
		if err != nil {
			return
		}
		again, err := o.Marshal()
		if err != nil {
			t.Fatalf("decoded %+v does not marshal: %v", o, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %+v, which marshals to %x", b, o, again)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	f.Add(uint8(typeRange), uint8(wireVersion), rangeReq{offset: 5, length: 9}.message().Body)
	f.Add(uint8(typeManifest), uint8(wireVersion), manifestReq{chunk: MinChunk}.message().Body)
	f.Add(uint8(typeHashes), uint8(wireVersion), hashesMessage(MinChunk, make([][32]byte, 2)).Body)
	f.Fuzz(func(t *testing.T, typ, ver uint8, body []byte) {
		m := netxMessage(typ, ver, body)
		if r, err := parseRequest(m); err == nil {
			var again []byte
			if r.rng != nil {
				again = r.rng.message().Body
			} else {
				again = r.man.message().Body
			}
			if !bytes.Equal(again, body) {
				t.Fatalf("request %x re-encodes as %x", body, again)
			}
		}
		// A manifest for a 2-chunk blob accepts exactly one shape.
		if h, err := parseHashes(m, 2*MinChunk-1, MinChunk); err == nil && len(h) != 2 {
			t.Fatalf("manifest of %d hashes accepted for 2 chunks", len(h))
		}
		_ = refusedError(m)
	})
}
