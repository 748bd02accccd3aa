package allreduce

import (
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkRoundWire is the CPU a round costs its members apart from the
// network: 4 members average 16 Mi float32 values (64 MiB) in memory, every
// message encoded as a transport sends it and decoded from a buffer the
// transport then reuses, as node/allreduce/p2p does.
func BenchmarkRoundWire(b *testing.B) {
	const n, size = 16 << 20, 4
	rng := rand.New(rand.NewSource(1))
	g := Group{}
	for i := range size {
		g.Members = append(g.Members, Member{ID: fmt.Sprintf("m%d", i), Role: RoleFull, Weight: 1})
	}
	base := roundConfig(b, g, n, 65536, mustCodec(b, "none"))
	vecs := randomVectors(rng, g, n)
	b.SetBytes(4 * n)
	for range b.N {
		rounds := make([]*Round, size)
		type msg struct {
			from, to int
			m        Msg
		}
		var queue []msg
		push := func(from int, out []Outgoing) {
			for _, o := range out {
				queue = append(queue, msg{from, o.To, o.Msg})
			}
		}
		for i := range rounds {
			cfg := base
			cfg.Self, cfg.Vector = i, vecs[i]
			r, err := NewRound(cfg)
			if err != nil {
				b.Fatal(err)
			}
			rounds[i] = r
			push(i, r.Start(0))
		}
		var wire []byte
		for len(queue) > 0 {
			q := queue[0]
			queue = queue[1:]
			var err error
			if wire, err = AppendMsg(wire[:0], q.m); err != nil {
				b.Fatal(err)
			}
			m, err := DecodeMsg(wire, MaxFrame(base))
			if err != nil {
				b.Fatal(err)
			}
			out, err := rounds[q.to].Receive(0, q.from, m)
			if err != nil {
				b.Fatal(err)
			}
			push(q.to, out)
		}
		for i, r := range rounds {
			if !r.Done() {
				b.Fatalf("member %d not done", i)
			}
		}
	}
}
