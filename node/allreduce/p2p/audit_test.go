package p2p

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/allreduce"
)

const testAuditProto = "/dtrain/test/audit/1.0.0"

func commitRandom(t *testing.T, rng *rand.Rand, n int, codec allreduce.Codec) ([]float32, *allreduce.Contribution) {
	t.Helper()
	vec := make([]float32, n)
	for i := range vec {
		vec[i] = float32(rng.NormFloat64())
	}
	c, err := allreduce.Commit(vec, codec, allreduce.DefaultCommitChunk, nil)
	if err != nil {
		t.Fatal(err)
	}
	return vec, c
}

// TestAuditFetch: an auditor fetches a member's whole committed vector over
// several requests, checked against the root it announced, and decodes the
// values the member committed; a member that serves another vector under
// that root is caught (ErrCommitMismatch); a root the member does not
// serve, a contribution pushed out by newer ones, and a requester the
// member does not serve are refused.
func TestAuditFetch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nodes := loopbackNodes(t, ctx, 3)
	member, auditor, stranger := nodes[0], nodes[1], nodes[2]
	srv := ServeContributions(member.Host(), testAuditProto, AuditOptions{
		Keep:  2,
		Allow: func(p peer.ID) bool { return p != stranger.ID() },
	})
	defer srv.Close()

	rng := rand.New(rand.NewSource(1))
	// 1.5M values of float32: 6 MB, two requests.
	vec, c := commitRandom(t, rng, 1_500_000, noneCodec)
	sc := allreduce.CommitScope{Run: "run/1", Epoch: 4, Member: member.ID().String()}
	root := srv.Add(sc, c)
	l := c.Layout()
	got, err := FetchContribution(ctx, auditor.Host(), member.ID(), testAuditProto, root, sc, l)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, c.Encoded()) {
		t.Fatal("fetched bytes differ from the committed ones")
	}
	if err := allreduce.VerifyContribution(root, sc, l, got); err != nil {
		t.Fatal(err)
	}
	values, err := l.Decode(got)
	if err != nil || !slices.Equal(values, vec) {
		t.Fatalf("decoded audit: %v (equal %v)", err, slices.Equal(values, vec))
	}

	// A lie: the member serves another vector under the root it announced.
	const liarProto = testAuditProto + "/liar"
	liar := ServeContributions(member.Host(), liarProto, AuditOptions{})
	defer liar.Close()
	_, lie := commitRandom(t, rng, l.Len, noneCodec)
	liar.add(root, lie)
	for _, first := range []int{0, 3, l.Chunks() - 1} {
		_, err = FetchChunks(ctx, auditor.Host(), member.ID(), liarProto, root, sc, l, first, 1)
		if !errors.Is(err, allreduce.ErrCommitMismatch) {
			t.Fatalf("a lying member, chunk %d: %v, want ErrCommitMismatch", first, err)
		}
	}
	if _, err := FetchContribution(ctx, auditor.Host(), member.ID(), liarProto, root, sc, l); !errors.Is(err, allreduce.ErrCommitMismatch) {
		t.Fatalf("a lying member, whole vector: %v, want ErrCommitMismatch", err)
	}

	refused := func(what string, h *netx.Node, root allreduce.Root) {
		t.Helper()
		_, err := FetchChunks(ctx, h.Host(), member.ID(), testAuditProto, root, sc, l, 0, 1)
		if !errors.Is(err, ErrAuditRefused) {
			t.Fatalf("%s: %v, want ErrAuditRefused", what, err)
		}
	}
	refused("an unknown root", auditor, allreduce.Root{0x42})
	refused("a stranger", stranger, root)
	_, newer := commitRandom(t, rng, 5000, noneCodec)
	srv.Add(sc, newer)
	srv.Add(allreduce.CommitScope{Run: "run/1", Epoch: 5, Member: sc.Member}, newer) // a second matchmaking, one slot
	if _, err := FetchChunks(ctx, auditor.Host(), member.ID(), testAuditProto, root, sc, l, 0, 1); err != nil {
		t.Fatalf("the older of two kept contributions: %v", err)
	}
	srv.Add(sc, lie)
	refused("a contribution beyond Keep", auditor, root)
}
