package netx

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestGossipCodecRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		run := strings.Repeat("r", 1+rng.IntN(MaxRunIDLen))
		m := GossipMessage{
			Type:    strings.Repeat("t", 1+rng.IntN(MaxGossipTypeLen)),
			Version: uint16(1 + rng.IntN(0xffff)),
			Body:    make([]byte, rng.IntN(3)*rng.IntN(5000)),
		}
		for j := range m.Body {
			m.Body[j] = byte(rng.Uint32())
		}
		data, err := encodeGossip(run, m)
		if err != nil {
			t.Fatal(err)
		}
		gotRun, got, err := decodeGossip(data)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if gotRun != run || got.Type != m.Type || got.Version != m.Version || !bytes.Equal(got.Body, m.Body) {
			t.Fatalf("case %d: round trip changed the message", i)
		}
	}
}

func TestGossipDecodeRejects(t *testing.T) {
	good, _ := encodeGossip("run", GossipMessage{Type: "t", Version: 1, Body: []byte("b")})
	cases := map[string][]byte{
		"empty":           nil,
		"truncated":       good[:len(good)-1],
		"garbage":         []byte("\xff\xff\xff\xff"),
		"no version":      good[:len(good)-5],
		"unknown field":   append(append([]byte{}, good...), 0x28, 1), // field 5 varint
		"repeated field":  append(append([]byte{}, good...), good[:5]...),
		"version 0":       mustEncodeRaw(t, "run", "t", 0),
		"version too big": mustEncodeRaw(t, "run", "t", 1<<16),
		"bad run id":      mustEncodeRaw(t, "a/b", "t", 1),
		"empty type":      mustEncodeRaw(t, "run", "", 1),
		"oversized type":  mustEncodeRaw(t, "run", strings.Repeat("t", MaxGossipTypeLen+1), 1),
		// The fuzzer's crasher: run, type, then the body with no version
		// between them; it decoded as version 0, which does not re-encode.
		"version skipped": []byte("\n\x0500000\x12\b00000000\"\x040000"),
	}
	for name, data := range cases {
		if _, _, err := decodeGossip(data); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// mustEncodeRaw encodes fields without encodeGossip's checks.
func mustEncodeRaw(t *testing.T, run, typ string, version uint64) []byte {
	t.Helper()
	var b []byte
	b = append(b, 0x0a, byte(len(run)))
	b = append(b, run...)
	b = append(b, 0x12, byte(len(typ)))
	b = append(b, typ...)
	b = append(b, 0x18)
	for version >= 0x80 {
		b = append(b, byte(version)|0x80)
		version >>= 7
	}
	return append(b, byte(version))
}

func FuzzDecodeGossip(f *testing.F) {
	good, _ := encodeGossip("run-a", GossipMessage{Type: "progress", Version: 3, Body: []byte("body")})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte("\n\x0500000\x12\b00000000\"\x040000"))
	f.Fuzz(func(t *testing.T, data []byte) {
		run, m, err := decodeGossip(data)
		if err != nil {
			return
		}
		again, err := encodeGossip(run, m)
		if err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
		run2, m2, err := decodeGossip(again)
		if err != nil || run2 != run || m2.Type != m.Type || m2.Version != m.Version || !bytes.Equal(m2.Body, m.Body) {
			t.Fatalf("re-encoded message decodes differently: %v", err)
		}
	})
}

// rawPublisher is a peer outside dtrain's validation: a bare gossipsub
// router on the run's topic, publishing whatever bytes a test gives it.
func rawPublisher(t *testing.T, ctx context.Context, topic string, to []*Node, opts ...pubsub.Option) *pubsub.Topic {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings(quicLoopback))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := ps.Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range to {
		if err := h.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	for len(tp.ListPeers()) < len(to) {
		if ctx.Err() != nil {
			t.Fatal("raw publisher never saw the run's peers on the topic")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return tp
}

// TestGossipRejectsInvalid sends oversized, unregistered, foreign-run,
// malformed, application-invalid and unsigned messages on a run's topic and
// requires that none is delivered while valid messages still are.
func TestGossipRejectsInvalid(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	boot := startNode(t)
	runs := startRun(t, ctx, boot, "run-v", 2)
	waitFormed(t, runs, 15*time.Second)
	gs := make([]*Gossip, len(runs))
	for i, r := range runs {
		g, err := r.Gossip(ctx)
		if err != nil {
			t.Fatal(err)
		}
		g.Handle("hello", func(_ peer.ID, body []byte) error {
			if bytes.Equal(body, []byte("evil")) {
				return errors.New("evil body")
			}
			return nil
		})
		gs[i] = g
	}
	for i, g := range gs {
		for !slices.Contains(g.Peers(), runs[1-i].node.ID()) {
			if ctx.Err() != nil {
				t.Fatalf("node %d never saw the other on the topic", i)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	nodes := []*Node{runs[0].node, runs[1].node}
	awaitMesh()
	topic := "dtrain/run-v/gossip/1"
	signed := rawPublisher(t, ctx, topic, nodes)
	unsigned := rawPublisher(t, ctx, topic, nodes, pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign))

	enc := func(run string, m GossipMessage) []byte {
		data, err := encodeGossip(run, m)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	bad := map[string][]byte{
		"oversized":    enc("run-v", GossipMessage{Type: "hello", Version: 1, Body: make([]byte, DefaultMaxGossipSize)}),
		"unknown type": enc("run-v", GossipMessage{Type: "bye", Version: 1, Body: []byte("x")}),
		"new version":  enc("run-v", GossipMessage{Type: "hello", Version: 2, Body: []byte("x")}),
		"wrong run":    enc("run-w", GossipMessage{Type: "hello", Version: 1, Body: []byte("x")}),
		"malformed":    []byte("\x0a\xff"),
		"evil body":    enc("run-v", GossipMessage{Type: "hello", Version: 1, Body: []byte("evil")}),
	}
	for name, data := range bad {
		if err := signed.Publish(ctx, data); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := unsigned.Publish(ctx, enc("run-v", GossipMessage{Type: "hello", Version: 1, Body: []byte("unsigned")})); err != nil {
		t.Fatal(err)
	}
	if err := signed.Publish(ctx, enc("run-v", GossipMessage{Type: "hello", Version: 1, Body: []byte("raw ok")})); err != nil {
		t.Fatal(err)
	}
	if err := gs[0].Publish(ctx, GossipMessage{Type: "hello", Body: []byte("node ok")}); err != nil {
		t.Fatal(err)
	}
	if err := gs[0].Publish(ctx, GossipMessage{Type: "bye", Body: []byte("x")}); err == nil {
		t.Error("Publish accepted an unregistered type")
	}
	if err := gs[0].Publish(ctx, GossipMessage{Type: "hello", Body: make([]byte, DefaultMaxGossipSize)}); !errors.Is(err, ErrGossipTooLarge) {
		t.Errorf("Publish of an oversized message: %v, want ErrGossipTooLarge", err)
	}

	want := map[int][]string{0: {"raw ok"}, 1: {"raw ok", "node ok"}}
	for i, g := range gs {
		got := map[string]bool{}
		for len(got) < len(want[i]) {
			_, m, err := g.Next(ctx)
			if err != nil {
				t.Fatalf("node %d got %v of %q: %v", i, got, want[i], err)
			}
			got[string(m.Body)] = true
		}
		for _, w := range want[i] {
			if !got[w] {
				t.Errorf("node %d: valid message %q not delivered; got %v", i, w, got)
			}
		}
		qctx, qcancel := context.WithTimeout(ctx, time.Second)
		if _, m, err := g.Next(qctx); err == nil {
			t.Errorf("node %d: invalid message delivered: type %q body %.20q", i, m.Type, m.Body)
		}
		qcancel()
	}
}
