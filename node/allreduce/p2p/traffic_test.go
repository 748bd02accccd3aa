package p2p

import (
	"context"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dtrain-dev/dtrain/node/allreduce"
)

// TestRunRoundTraffic: three full members average over loopback QUIC
// without failures. Each one's counted traffic holds at least the values
// the butterfly makes it send (RoundConfig.SentBytes) and receive (the
// others' values of its span, and their means of theirs), and no member
// counts a byte as received that no member counted as sent.
func TestRunRoundTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nodes := loopbackNodes(t, ctx, 3)
	var g allreduce.Group
	peers := make([]peer.ID, len(nodes))
	for i, nd := range nodes {
		peers[i] = nd.ID()
		g.Members = append(g.Members, allreduce.Member{ID: nd.ID().String(), Role: allreduce.RoleFull, Weight: float64(i + 1)})
	}
	const n = 30_001
	vecs := randomVectors(rand.New(rand.NewSource(3)), g, n)
	base := roundConfig(t, g, n, 4096, noneCodec)
	traffic := make([]Traffic, len(nodes))
	cfgs := make([]allreduce.RoundConfig, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, nd := range nodes {
		cfgs[i] = base
		cfgs[i].Self, cfgs[i].Vector = i, vecs[i]
		r, err := allreduce.NewRound(cfgs[i])
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			_, traffic[i], errs[i] = RunRoundTraffic(ctx, nd.Host(), testRoundProto, peers, r, 10*time.Millisecond)
		})
	}
	wg.Wait()
	var sent, received int64
	for i, c := range cfgs {
		if errs[i] != nil {
			t.Fatalf("member %d: %v", i, errs[i])
		}
		own := c.Spans[i].Len()
		// float32 values (codec none): the others' values of its span,
		// then their means of the rest.
		wantIn := int64(4 * (2*own + n - own))
		tr := traffic[i]
		t.Logf("member %d: sent %d bytes (values %d), received %d (values %d)", i, tr.Sent, c.SentBytes(), tr.Received, wantIn)
		if tr.Sent < c.SentBytes() || tr.Received < wantIn {
			t.Errorf("member %d: sent %d, received %d bytes; the values alone are %d and %d", i, tr.Sent, tr.Received, c.SentBytes(), wantIn)
		}
		sent += tr.Sent
		received += tr.Received
	}
	if received > sent {
		t.Errorf("%d bytes received in all, more than the %d sent", received, sent)
	}
}
