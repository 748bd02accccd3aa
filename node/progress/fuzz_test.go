package progress

import (
	"bytes"
	"testing"
)

// FuzzUnmarshal checks that Unmarshal never panics, and that whatever it
// accepts is valid and re-encodes to exactly the input (one encoding per
// report, so peers can compare and deduplicate encodings).
func FuzzUnmarshal(f *testing.F) {
	good, _ := sampleReport().Marshal()
	minimal, _ := Report{Peer: "a"}.Marshal()
	f.Add(good)
	f.Add(minimal)
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), 0))
	f.Add([]byte{})
	f.Add([]byte{Version, 0xFF, MaxPeerLen + 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Report
		if err := r.Unmarshal(b); err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted an invalid report %+v: %v", r, err)
		}
		again, err := r.Marshal()
		if err != nil {
			t.Fatalf("Marshal of an accepted report: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs\n  in %x\n out %x", b, again)
		}
	})
}
