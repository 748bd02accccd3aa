package verify

import (
	"math"

	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/torch"
)

// corpus is a synthetic token corpus for the simulation: windows drawn
// from a sparse random first-order Markov chain over vocab tokens, so a
// model learns something that holds on every window (the chain) while
// each window's own draws are noise only training on it can fit. Window w
// is generated from (seed, w) alone, so the corpus is as large as wanted
// and costs no memory.
type corpus struct {
	seed  uint64
	vocab int
	seq   int
	succ  [][]int32   // each token's successors
	cum   [][]float64 // their cumulative probabilities
	noise float64     // probability that a token is uniform instead
}

const corpusWindows = 1 << 30

func newCorpus(seed uint64, vocab, seq, fanout int, noise float64) *corpus {
	c := &corpus{seed: seed, vocab: vocab, seq: seq, noise: noise}
	r := srng(data.SplitMix64(seed ^ 0xc0ffee))
	for tok := 0; tok < vocab; tok++ {
		succ := make([]int32, fanout)
		cum := make([]float64, fanout)
		var total float64
		for i := range succ {
			succ[i] = int32(r.next() % uint64(vocab))
			p := math.Pow(0.5, float64(i)) // 1/2, 1/4, ...: entropy ~1.4 nats at fanout 4
			total += p
			cum[i] = total
		}
		for i := range cum {
			cum[i] /= total
		}
		c.succ, c.cum = append(c.succ, succ), append(c.cum, cum)
	}
	return c
}

// window fills x and y (seq tokens each) with window w.
func (c *corpus) window(w int64, x, y []int32) {
	r := srng(data.SplitMix64(c.seed ^ data.SplitMix64(uint64(w))))
	tok := int32(r.next() % uint64(c.vocab))
	for i := 0; i <= c.seq; i++ {
		if i < c.seq {
			x[i] = tok
		}
		if i > 0 {
			y[i-1] = tok
		}
		u := r.float()
		cum := c.cum[tok]
		j := 0
		for j < len(cum)-1 && u > cum[j] {
			j++
		}
		tok = c.succ[tok][j]
		if r.float() < c.noise {
			tok = int32(r.next() % uint64(c.vocab))
		}
	}
}

// lane is a run of the corpus's windows: sample k is window
// (start + k·stride) mod corpusWindows, like node/data's lanes a public
// function of (epoch, peer).
type lane struct {
	c      *corpus
	start  int64
	stride int64
	micro  int
}

func (c *corpus) lane(epoch uint64, peer string, micro int) lane {
	h := data.SplitMix64(c.seed ^ data.SplitMix64(epoch+0x100))
	for _, b := range []byte(peer) {
		h = data.SplitMix64(h ^ uint64(b))
	}
	return lane{c: c, start: int64(h % corpusWindows), stride: int64(data.SplitMix64(h)%corpusWindows) | 1, micro: micro}
}

// batch is the lane's micro-batch k.
func (l lane) batch(k int) (torch.Batch, error) {
	t := l.c.seq
	b := torch.Batch{B: l.micro, T: t, X: make([]int32, l.micro*t), Y: make([]int32, l.micro*t)}
	for i := 0; i < l.micro; i++ {
		s := int64(k*l.micro + i)
		w := (l.start + s*l.stride) % corpusWindows
		l.c.window(w, b.X[i*t:(i+1)*t], b.Y[i*t:(i+1)*t])
	}
	return b, nil
}

// dropoutSeed is the seed of the lane's micro-batch k's dropout masks.
func (l lane) dropoutSeed(k int) uint64 {
	return data.SplitMix64(uint64(l.start) ^ data.SplitMix64(uint64(k)))
}

type srng uint64

func (r *srng) next() uint64 {
	*r = srng(data.SplitMix64(uint64(*r)))
	return uint64(*r)
}

func (r *srng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

func (r *srng) norm() float64 {
	u1, u2 := r.float(), r.float()
	return math.Sqrt(-2*math.Log(1-u1)) * math.Cos(2*math.Pi*u2)
}
