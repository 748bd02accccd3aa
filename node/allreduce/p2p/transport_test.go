package p2p

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/allreduce"
)

const testRoundProto = "/dtrain/test/allreduce/1.0.0"

// loopbackNodes starts n netx nodes on loopback QUIC, each connected to
// every other directly.
func loopbackNodes(t testing.TB, ctx context.Context, n int) []*netx.Node {
	t.Helper()
	nodes := make([]*netx.Node, n)
	for i := range nodes {
		nodes[i] = startNode(t, ctx, loopbackConfig())
	}
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			if err := a.Host().Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return nodes
}

// loopbackConfig is a node on loopback QUIC without NAT traversal.
func loopbackConfig() netx.Config {
	cfg := netx.DefaultConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.EnableNAT = false
	return cfg
}

// startNode starts a node, closed when the test ends.
func startNode(t testing.TB, ctx context.Context, cfg netx.Config) *netx.Node {
	t.Helper()
	nd, err := netx.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Close() })
	return nd
}

// loopbackRound runs one round among nodes with the given roles (weights
// random) and returns every member's result and error. crash, if >= 0, is a
// member whose host closes crashAfter into the round.
type loopbackRound struct {
	roles      []allreduce.Role
	n, part    int
	codec      allreduce.Codec
	crash      int
	crashAfter time.Duration
	timeout    time.Duration
	commit     int     // > 0: a committed round with chunks of this size
	uplink     float64 // > 0: every member's uplink limit, bits/s
}

func (lr loopbackRound) run(t *testing.T, rng *rand.Rand) (allreduce.Group, [][]float32, []allreduce.Result, []error, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes := loopbackNodes(t, ctx, len(lr.roles))
	var g allreduce.Group
	peers := make([]peer.ID, len(nodes))
	for i, nd := range nodes {
		peers[i] = nd.ID()
		m := allreduce.Member{ID: nd.ID().String(), Role: lr.roles[i]}
		if m.Role != allreduce.RoleAux {
			m.Weight = float64(1 + rng.Intn(100))
		}
		g.Members = append(g.Members, m)
	}
	vecs := randomVectors(rng, g, lr.n)
	base := roundConfig(t, g, lr.n, lr.part, lr.codec)
	if lr.timeout > 0 {
		base.PartTimeout, base.ReduceTimeout, base.RoundTimeout = lr.timeout/5, lr.timeout/2, lr.timeout
	}
	contribs := lr.commitAll(t, &base, vecs)
	results := make([]allreduce.Result, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	begin := time.Now()
	for i, nd := range nodes {
		cfg := base
		cfg.Self, cfg.Vector = i, vecs[i]
		if lr.commit > 0 {
			cfg.Vector, cfg.Contribution = nil, contribs[i]
		}
		r, err := allreduce.NewRound(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if i == lr.crash {
			time.AfterFunc(lr.crashAfter, func() { nd.Close() })
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = RunRound(ctx, nd.Host(), testRoundProto, peers, r, 10*time.Millisecond, WithUplinkLimit(NewUplinkLimit(lr.uplink)))
		}()
	}
	wg.Wait()
	return g, vecs, results, errs, time.Since(begin)
}

// commitAll makes base committed when lr asks for it: every contributor
// commits its vector, the group holds the roots, the spans are aligned.
func (lr loopbackRound) commitAll(t *testing.T, base *allreduce.RoundConfig, vecs [][]float32) []*allreduce.Contribution {
	t.Helper()
	contribs := make([]*allreduce.Contribution, len(vecs))
	if lr.commit <= 0 {
		return contribs
	}
	base.Commit = allreduce.CommitConfig{Run: "loopback", Epoch: 1, Chunk: lr.commit}
	base.Spans = allreduce.AlignSpans(base.Spans, lr.commit, base.Len)
	for i, m := range base.Group.Members {
		if !contributes(m.Role) {
			continue
		}
		c, err := allreduce.Commit(vecs[i], base.Codec, lr.commit, nil)
		if err != nil {
			t.Fatal(err)
		}
		contribs[i] = c
		base.Group.Members[i].Commit = c.Root(allreduce.CommitScope{Run: "loopback", Epoch: 1, Member: m.ID})
	}
	return contribs
}

// TestRunRoundLoopback: 4 and 6 peers on loopback QUIC, roles mixed, end
// with the exact weighted mean (codec none) or within int8's bound, all
// bitwise equal; also committed, every part carrying its proof.
func TestRunRoundLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	for _, tc := range []struct {
		roles  []allreduce.Role
		codec  allreduce.CodecID
		commit int
	}{
		{[]allreduce.Role{allreduce.RoleFull, allreduce.RoleFull, allreduce.RoleClient, allreduce.RoleAux}, allreduce.CodecNone, 0},
		{[]allreduce.Role{allreduce.RoleFull, allreduce.RoleClient, allreduce.RoleFull, allreduce.RoleAux, allreduce.RoleFull, allreduce.RoleFull}, allreduce.CodecNone, 0},
		{[]allreduce.Role{allreduce.RoleFull, allreduce.RoleFull, allreduce.RoleClient, allreduce.RoleAux}, allreduce.CodecInt8, 0},
		{[]allreduce.Role{allreduce.RoleFull, allreduce.RoleFull, allreduce.RoleClient, allreduce.RoleAux}, allreduce.CodecInt8, 1024},
	} {
		t.Run(fmt.Sprintf("%d-%v-commit%d", len(tc.roles), tc.codec, tc.commit), func(t *testing.T) {
			codec, _ := allreduce.CodecByID(tc.codec)
			rng := rand.New(rand.NewSource(int64(len(tc.roles))))
			lr := loopbackRound{roles: tc.roles, n: 100_003, part: 4096, codec: codec, crash: -1, commit: tc.commit}
			g, vecs, res, errs, took := lr.run(t, rng)
			for i, err := range errs {
				if err != nil {
					t.Fatalf("member %d: %v", i, err)
				}
			}
			checkLoopback(t, g, vecs, res, allMembers(g), contributorsOf(g), codec)
			t.Logf("%d peers, %d values, %v: %v", len(tc.roles), lr.n, tc.codec, took)
		})
	}
}

// TestRunRoundLoopbackCrash: a member whose host closes mid-round never
// makes the others hang: they end by the round deadline, either agreeing
// on a result over contributors without it, or with a clean error.
func TestRunRoundLoopbackCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	for _, after := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run(fmt.Sprint(after), func(t *testing.T) {
			rng := rand.New(rand.NewSource(7))
			lr := loopbackRound{roles: []allreduce.Role{allreduce.RoleFull, allreduce.RoleFull, allreduce.RoleClient, allreduce.RoleFull}, n: 1 << 20, part: 1 << 14,
				codec: noneCodec, crash: 3, crashAfter: after, timeout: 3 * time.Second}
			g, vecs, res, errs, took := lr.run(t, rng)
			if took > lr.timeout+2*time.Second {
				t.Fatalf("survivors took %v, round deadline %v", took, lr.timeout)
			}
			var ok []int
			for i := range 3 {
				switch {
				case errs[i] == nil:
					ok = append(ok, i)
				case !errors.Is(errs[i], allreduce.ErrSpanLost) && !errors.Is(errs[i], allreduce.ErrNoContributors):
					t.Fatalf("member %d: unclean error %v", i, errs[i])
				}
			}
			if len(ok) > 0 {
				checkLoopback(t, g, vecs, res, ok, res[ok[0]].Contributors, noneCodec)
			}
			t.Logf("crash after %v: took %v, %d of 3 survivors with a result; member 0: %v", after, took, len(ok), errors.Is(errs[0], allreduce.ErrSpanLost))
		})
	}
}

// TestRunRoundLoopback16MB reports the time for 4 full peers averaging
// 16 MB over loopback QUIC.
func TestRunRoundLoopback16MB(t *testing.T) {
	if testing.Short() {
		t.Skip("16 MB over libp2p")
	}
	rng := rand.New(rand.NewSource(16))
	lr := loopbackRound{roles: []allreduce.Role{allreduce.RoleFull, allreduce.RoleFull, allreduce.RoleFull, allreduce.RoleFull}, n: 4 << 20, part: 1 << 18,
		codec: noneCodec, crash: -1, timeout: 60 * time.Second}
	g, vecs, res, errs, took := lr.run(t, rng)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
	checkLoopback(t, g, vecs, res, allMembers(g), contributorsOf(g), noneCodec)
	// Each peer sends and receives 2(N-1)/N of the vector.
	bytes := float64(16<<20) * 2 * 3 / 4
	t.Logf("4 peers, 16 MB: %v, %.2f Gbit/s per peer", took, bytes*8/took.Seconds()/1e9)
}

// TestRunRoundLoopbackAbsent: a formed group of four on loopback QUIC with
// the miner's timeouts, in which member 1 never takes part: its peer has no
// host at all, its host closed before the round, or its host is up but
// never opens the round (it gave up in matchmaking). The three others end
// with the exact mean of the three, well before the round's deadline.
func TestRunRoundLoopbackAbsent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	const round, absent = 8 * time.Second, 1
	for _, how := range []string{"no host", "closed host", "idle host"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rng := rand.New(rand.NewSource(11))
			nodes := loopbackNodes(t, ctx, 4)
			var g allreduce.Group
			peers := make([]peer.ID, len(nodes))
			for i, nd := range nodes {
				peers[i] = nd.ID()
				g.Members = append(g.Members, allreduce.Member{ID: nd.ID().String(), Role: allreduce.RoleFull, Weight: float64(1 + rng.Intn(100))})
			}
			switch how {
			case "no host":
				key, _, err := crypto.GenerateEd25519Key(rng)
				if err != nil {
					t.Fatal(err)
				}
				if peers[absent], err = peer.IDFromPrivateKey(key); err != nil {
					t.Fatal(err)
				}
				g.Members[absent].ID = peers[absent].String()
				nodes[absent].Close()
			case "closed host":
				nodes[absent].Close()
			}
			vecs := randomVectors(rng, g, 1<<18)
			base := roundConfig(t, g, 1<<18, 1<<12, noneCodec)
			minerTimeouts(&base, round)
			begin := time.Now()
			results, errs := runMembers(t, ctx, nodes, peers, base, vecs, absent)
			took := time.Since(begin)
			survivors := except(allMembers(g), absent)
			for _, i := range survivors {
				if errs[i] != nil {
					t.Fatalf("member %d after %v: %v", i, took, errs[i])
				}
			}
			checkLoopback(t, g, vecs, results, survivors, contributorsOf(g, absent), noneCodec)
			if took > round/2 {
				t.Fatalf("survivors took %v of a %v round, want under half of it", took, round)
			}
			t.Logf("%s: survivors finished after %v of a %v round", how, took, round)
		})
	}
}

// An uplink limit holds what each member sends to its rate: a round can
// take no less than its bytes at that rate, less one burst. (Only this
// lower bound is checked: an upper one would depend on the machine.)
func TestRunRoundUplinkLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	codec, _ := allreduce.CodecByID(allreduce.CodecNone)
	roles := []allreduce.Role{allreduce.RoleFull, allreduce.RoleFull}
	lr := loopbackRound{roles: roles, n: 1 << 18, part: 1 << 14, codec: codec, crash: -1, uplink: 16e6}
	g, vecs, res, errs, took := lr.run(t, rand.New(rand.NewSource(1)))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
	checkLoopback(t, g, vecs, res, allMembers(g), contributorsOf(g), codec)
	// Each member sends its half of the vector to the other's owner and
	// the mean of its own half back: 1 MiB of values.
	least := time.Duration(float64((1<<20)-NewUplinkLimit(lr.uplink).Burst()) * 8 / lr.uplink * float64(time.Second))
	if took < least {
		t.Fatalf("round took %v under a 16 Mbit/s limit; 1 MiB at that rate takes at least %v", took, least)
	}
	t.Logf("1 MiB each way under 16 Mbit/s: %v (at least %v)", took, least)
}

// runMembers runs base's round on every node but skip (-1: none), each
// with its own vector, and returns every member's result and error.
func runMembers(t *testing.T, ctx context.Context, nodes []*netx.Node, peers []peer.ID, base allreduce.RoundConfig, vecs [][]float32, skip int) ([]allreduce.Result, []error) {
	t.Helper()
	results, errs := make([]allreduce.Result, len(nodes)), make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, nd := range nodes {
		if i == skip {
			continue
		}
		cfg := base
		cfg.Self, cfg.Vector = i, vecs[i]
		r, err := allreduce.NewRound(cfg)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = RunRound(ctx, nd.Host(), testRoundProto, peers, r, 10*time.Millisecond)
		}()
	}
	wg.Wait()
	return results, errs
}
