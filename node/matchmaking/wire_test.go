package matchmaking

import (
	"reflect"
	"strings"
	"testing"
)

// sampleEnvelope is what a peer "a" sends in epoch 5: its announcement and
// its view of a group with "b".
func sampleEnvelope() Envelope {
	ready := Ready{Run: "run", Epoch: 5, Peer: "a", Role: Full, Weight: 12, Bandwidth: 3e6}
	view := View{Run: "run", Epoch: 5, Round: 1, Members: []Member{ready.member(), {ID: "b", Role: Aux}}}
	return Envelope{To: "b", Epoch: 5, Ready: &ready, Msg: Msg{View: &view}}
}

// TestEnvelopeRoundTrip: an envelope decodes to what was encoded, from its
// sender.
func TestEnvelopeRoundTrip(t *testing.T) {
	for _, e := range []Envelope{sampleEnvelope(), {Epoch: 5, Msg: Msg{Ready: []Ready{*sampleEnvelope().Ready}}}} {
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalEnvelope("a", b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("decoded %+v, want %+v", got, e)
		}
	}
}

// TestEnvelopeRejects: an envelope is refused when it announces another
// peer than its sender (in Ready or Msg.Ready), mixes epochs, or carries
// an over-long id, and when it is not JSON.
func TestEnvelopeRejects(t *testing.T) {
	long := strings.Repeat("x", MaxPeerIDLen+1)
	for _, tc := range []struct {
		name string
		edit func(e *Envelope)
	}{
		{"ready of another peer", func(e *Envelope) { e.Ready.Peer = "c" }},
		{"batched ready of another peer", func(e *Envelope) { e.Msg = Msg{Ready: []Ready{{Run: "run", Epoch: 5, Peer: "c"}}} }},
		{"ready of another epoch", func(e *Envelope) { e.Ready.Epoch = 6 }},
		{"view of another epoch", func(e *Envelope) { e.Msg.View.Epoch = 4 }},
		{"long recipient", func(e *Envelope) { e.To = long }},
		{"long member id", func(e *Envelope) { e.Msg.View.Members[1].ID = long }},
	} {
		e := sampleEnvelope()
		tc.edit(&e)
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnmarshalEnvelope("a", b); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := UnmarshalEnvelope("a", []byte(`{"epoch":`)); err == nil {
		t.Error("truncated JSON accepted")
	}
}

// FuzzUnmarshalEnvelope: any bytes from any sender decode to an error or to
// an envelope that passes the checks and survives a round trip unchanged;
// nothing panics.
func FuzzUnmarshalEnvelope(f *testing.F) {
	good, _ := sampleEnvelope().Marshal()
	f.Add("a", good)
	f.Add("b", good)
	f.Add("a", good[:len(good)/2])
	f.Add("a", []byte(`{"epoch":5,"msg":{"Ready":[{"Peer":"a","Epoch":5}],"View":null}}`))
	f.Add("a", []byte(`{"epoch":1,"msg":{"View":{"Epoch":1,"Members":[{"ID":"a","Weight":-1}]}}}`))
	f.Add("", []byte(`null`))
	f.Fuzz(func(t *testing.T, from string, b []byte) {
		e, err := UnmarshalEnvelope(from, b)
		if err != nil {
			return
		}
		if e.Ready != nil && (e.Ready.Peer != from || e.Ready.Epoch != e.Epoch) {
			t.Fatalf("accepted a foreign announcement %+v from %q", e.Ready, from)
		}
		again, err := e.Marshal()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		e2, err := UnmarshalEnvelope(from, again)
		if err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("round trip of an accepted envelope: %+v -> %+v, %v", e, e2, err)
		}
	})
}
