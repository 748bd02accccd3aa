package score

import (
	"math"
	"math/rand"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// The simulated swarm: miners with heterogeneous access links on a
// node/sim network, and validators that measure them over it with the
// probes netx makes (a ping, a timed upload, a timed download), one miner
// after another, each with its own measurement noise. One validator joins
// a round as aux each epoch; the rounds' deliveries and the work checks'
// verdicts are shared facts fed to every validator alike.
const (
	simEpoch      = 2 * time.Minute
	simProbeBytes = 16 << 20
	simPartBytes  = 4 << 20
	simDeadline   = 3 * time.Second
	simGroup      = 8
	simNoise      = 0.10 // each measurement × (1 ± 10%)
)

type simMiner struct {
	id        sim.ID
	link      sim.Link
	quality   float64 // the mean quality of its work
	cheatFrom int     // the first epoch it cheats in; -1 never
}

// simProbe is a probe message; kind says which.
type simProbe struct {
	kind string // ping, pong, upload, done, download, data
}

type simValidator struct {
	id    sim.ID
	rng   *rand.Rand // measurement noise
	obs   []Observation
	queue []simTask // probes still to run this epoch
	cur   simTask
	start time.Duration
	epoch uint64
}

type simTask struct {
	miner sim.ID
	kind  string // ping, upload, download
}

type simSwarm struct {
	net        *sim.Network
	miners     []simMiner
	validators []*simValidator
	rng        *rand.Rand // shared facts: groups, check qualities
	checkedAt  map[sim.ID]int
	order      []int // this cycle's order of miners for the aux groups
}

// newSimSwarm builds n miners with links of 100–1000 Mbit/s each way
// (log-uniform, independently) and 5–100 ms one way, the first of them
// slow (50 Mbit/s, 20 ms), and two validators on 1 Gbit/s.
func newSimSwarm(t testing.TB, seed int64, n int, cheatFrom int) *simSwarm {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	s := &simSwarm{net: sim.New(nil), rng: rng, checkedAt: map[sim.ID]int{}}
	for i := range n {
		m := simMiner{
			id:        sim.ID(minerName(i)),
			quality:   0.02 * (0.8 + 0.4*rng.Float64()),
			cheatFrom: -1,
			link: sim.Link{
				Uplink:   mbps(100 * math.Pow(10, rng.Float64())),
				Downlink: mbps(100 * math.Pow(10, rng.Float64())),
				Latency:  time.Duration(5+rng.Intn(96)) * time.Millisecond,
			},
		}
		if i == 0 {
			m.link = sim.Link{Uplink: mbps(50), Downlink: mbps(50), Latency: 20 * time.Millisecond}
		}
		if i == n-1 {
			m.cheatFrom = cheatFrom
		}
		s.miners = append(s.miners, m)
		if err := s.net.AddPeer(m.id, m.link, s.minerHandler(m.id)); err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range []sim.ID{"validator-a", "validator-b"} {
		v := &simValidator{id: name, rng: rand.New(rand.NewSource(seed*100 + int64(i)))}
		s.validators = append(s.validators, v)
		if err := s.net.AddPeer(name, sim.Link{Uplink: mbps(1000), Downlink: mbps(1000), Latency: 2 * time.Millisecond}, s.validatorHandler(v)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// minerHandler answers probes as a netx probe handler does.
func (s *simSwarm) minerHandler(id sim.ID) sim.Handler {
	return func(_ time.Duration, from sim.ID, msg sim.Message) {
		p, ok := msg.Payload.(simProbe)
		if !ok {
			return
		}
		switch p.kind {
		case "ping":
			s.net.Send(id, from, sim.Message{Size: 64, Payload: simProbe{"pong"}})
		case "upload":
			s.net.Send(id, from, sim.Message{Size: 64, Payload: simProbe{"done"}})
		case "download":
			s.net.Send(id, from, sim.Message{Size: simProbeBytes, Payload: simProbe{"data"}})
		}
	}
}

// validatorHandler times the probe under way, turns it into an
// observation with noise, and starts the next.
func (s *simSwarm) validatorHandler(v *simValidator) sim.Handler {
	return func(now time.Duration, from sim.ID, msg sim.Message) {
		if _, ok := msg.Payload.(simProbe); !ok || from != v.cur.miner {
			return
		}
		took := (now - v.start).Seconds() * (1 + simNoise*(2*v.rng.Float64()-1))
		p := Probe{Epoch: v.epoch, Miner: string(from)}
		switch v.cur.kind {
		case "ping":
			p.RTT = time.Duration(took * float64(time.Second))
		case "upload":
			p.Down = simProbeBytes / took
		case "download":
			p.Up = simProbeBytes / took
		}
		v.obs = append(v.obs, p)
		s.nextProbe(v)
	}
}

func (s *simSwarm) nextProbe(v *simValidator) {
	if len(v.queue) == 0 {
		v.cur = simTask{}
		return
	}
	v.cur, v.queue = v.queue[0], v.queue[1:]
	v.start = s.net.Now()
	size := 64
	if v.cur.kind == "upload" {
		size = simProbeBytes
	}
	s.net.Send(v.id, v.cur.miner, sim.Message{Size: size, Payload: simProbe{v.cur.kind}})
}

// epoch runs epoch e: both validators probe every miner (a in id order, b
// in reverse, so they meet on some links), then a round with one group as
// aux, then the checks. It returns each validator's observations: its own
// probes plus the shared rounds, verdicts and sightings.
func (s *simSwarm) epoch(t testing.TB, e int) [][]Observation {
	t.Helper()
	s.net.RunUntil(time.Duration(e) * simEpoch)
	for i, v := range s.validators {
		v.obs, v.queue, v.epoch = nil, nil, uint64(e)
		for j := range s.miners {
			m := s.miners[j]
			if i == 1 {
				m = s.miners[len(s.miners)-1-j]
			}
			for _, kind := range []string{"ping", "upload", "download"} {
				v.queue = append(v.queue, simTask{m.id, kind})
			}
		}
		s.nextProbe(v)
	}
	s.net.RunUntilIdle()
	if s.net.Now() > time.Duration(e)*simEpoch+simEpoch/2 {
		t.Fatalf("epoch %d: probes took %v, past half the epoch", e, s.net.Now()-time.Duration(e)*simEpoch)
	}
	shared := append(s.round(t, e), s.checks(e)...)
	for _, m := range s.miners {
		shared = append(shared, Seen{Epoch: uint64(e), Miner: string(m.id), Behind: uint64(s.rng.Intn(8) / 7)})
	}
	out := make([][]Observation, len(s.validators))
	for i, v := range s.validators {
		if len(v.queue) > 0 || v.cur.miner != "" {
			t.Fatalf("epoch %d: %s's probes did not finish", e, v.id)
		}
		out[i] = append(append([]Observation(nil), v.obs...), shared...)
	}
	return out
}

// round has one group of miners send their parts to validator a at once;
// a part that arrives by the deadline is on time. Groups rotate so that
// every miner is in a's group once every len/simGroup epochs.
func (s *simSwarm) round(t testing.TB, e int) []Observation {
	t.Helper()
	cycle := (len(s.miners) + simGroup - 1) / simGroup
	if e%cycle == 0 {
		s.order = s.rng.Perm(len(s.miners))
	}
	lo := (e % cycle) * simGroup
	group := s.order[lo:min(lo+simGroup, len(s.miners))]
	aux := s.validators[0]
	start := s.net.Now()
	arrived := map[sim.ID]time.Duration{}
	s.net.SetHandler(aux.id, func(now time.Duration, from sim.ID, _ sim.Message) { arrived[from] = now - start })
	for _, i := range group {
		s.net.Send(s.miners[i].id, aux.id, sim.Message{Size: simPartBytes})
	}
	s.net.RunUntilIdle()
	s.net.SetHandler(aux.id, s.validatorHandler(aux))
	var obs []Observation
	for _, i := range group {
		id := s.miners[i].id
		took, ok := arrived[id]
		if !ok {
			t.Fatalf("epoch %d: %s's part never arrived", e, id)
		}
		r := Round{Epoch: uint64(e), Miner: string(id), Delivery: OnTime, Rate: simPartBytes / took.Seconds()}
		if took > simDeadline {
			r.Delivery = Late
		}
		obs = append(obs, r)
	}
	return obs
}

// checks verifies the third of the miners checked longest ago (ties by
// id), as Subnet 38's validators pick: a cheater is caught when checked.
func (s *simSwarm) checks(e int) []Observation {
	idx := make([]int, len(s.miners))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		ca, oka := s.checkedAt[s.miners[a].id]
		cb, okb := s.checkedAt[s.miners[b].id]
		switch {
		case oka != okb:
			if oka {
				return 1
			}
			return -1
		case ca != cb:
			return ca - cb
		}
		return 0
	})
	var obs []Observation
	for _, i := range idx[:len(idx)/3] {
		m := s.miners[i]
		s.checkedAt[m.id] = e
		v := Verdict{Epoch: uint64(e), Miner: string(m.id), Kind: Pass, Quality: m.quality * (1 + 0.2*(2*s.rng.Float64()-1))}
		if m.cheatFrom >= 0 && e >= m.cheatFrom {
			v = Verdict{Epoch: uint64(e), Miner: string(m.id), Kind: Cheat, Reason: "loss on assigned batches no better than on random ones"}
		}
		obs = append(obs, v)
	}
	return obs
}

// run runs epochs 0..epochs-1 with one scorer per validator, plus a third
// fed exactly validator a's observations, and returns each scorer's
// weights per epoch.
func runSimSwarm(t testing.TB, seed int64, n, epochs, cheatFrom int) (a, b, same []Weights) {
	t.Helper()
	s := newSimSwarm(t, seed, n, cheatFrom)
	scorers := []*Scorer{mustNew(t, DefaultConfig(), 0), mustNew(t, DefaultConfig(), 0), mustNew(t, DefaultConfig(), 0)}
	ws := make([][]Weights, 3)
	for e := range epochs {
		obs := s.epoch(t, e)
		obs = append(obs, obs[0])
		for i, sc := range scorers {
			observeAll(t, sc, obs[i])
			ws[i] = append(ws[i], mustWeights(t, sc, uint64(e)))
		}
	}
	return ws[0], ws[1], ws[2]
}

// TestSimValidatorsAgree: two validators measuring the links themselves,
// with noise, rank the miners alike (Spearman ≥ 0.9); one fed the very
// same observations as another computes bit-identical weights.
func TestSimValidatorsAgree(t *testing.T) {
	worst := 1.0
	for seed := int64(1); seed <= 5; seed++ {
		a, b, same := runSimSwarm(t, seed, 24, 12, -1)
		if !reflect.DeepEqual(a, same) {
			t.Fatalf("seed %d: same observations, different weights", seed)
		}
		last := len(a) - 1
		rho := spearman(weightVector(a[last]), weightVector(b[last]))
		worst = min(worst, rho)
		if rho < 0.9 {
			t.Errorf("seed %d: Spearman %.3f between the validators' weights, want >= 0.9\na %v\nb %v", seed, rho, weightVector(a[last]), weightVector(b[last]))
		}
	}
	t.Logf("worst Spearman over 5 seeds: %.3f", worst)
}

// TestSimHonestSwarm: in 20 seeded runs with only honest miners on
// heterogeneous links, one slow (50 Mbit/s), no miner weighs less than
// half the median after 12 epochs (the acceptance).
func TestSimHonestSwarm(t *testing.T) {
	worst, slowWorst := math.Inf(1), math.Inf(1)
	for seed := int64(1); seed <= 20; seed++ {
		a, _, _ := runSimSwarm(t, seed, 24, 12, -1)
		w := weightVector(a[len(a)-1])
		med := median(slices.Clone(w))
		for i, x := range w {
			worst = min(worst, x/med)
			if x < med/2 {
				t.Errorf("seed %d: %s weighs %.4f, under half the median %.4f", seed, minerName(i), x, med)
			}
		}
		slowWorst = min(slowWorst, w[0]/med)
	}
	t.Logf("over 20 seeds: least weight %.3f of the median; the slow miner's least %.3f", worst, slowWorst)
}

// TestSimCheaterFallsWithinThreeEpochs: in 20 seeded runs a miner that
// starts cheating in epoch 6, with a third of the miners checked each
// epoch, weighs under 10% of the median honest miner within 3 epochs
// (the issue asks it of 19 in 20; the scorer gates on the verdict, so it
// is all of them once a check comes).
func TestSimCheaterFallsWithinThreeEpochs(t *testing.T) {
	const cheatFrom = 6
	caught := 0
	for seed := int64(1); seed <= 20; seed++ {
		a, _, _ := runSimSwarm(t, seed, 24, cheatFrom+3, cheatFrom)
		w := weightVector(a[cheatFrom+2])
		cheater := w[len(w)-1]
		med := median(slices.Clone(w[:len(w)-1]))
		if cheater < med/10 {
			caught++
		}
		if before := weightVector(a[cheatFrom-1]); before[len(before)-1] < median(slices.Clone(before[:len(before)-1]))/2 {
			t.Errorf("seed %d: before cheating the cheater already weighed under half the median", seed)
		}
	}
	if caught < 20 {
		t.Errorf("cheater under 10%% of the median within 3 epochs in %d of 20 runs, want 20", caught)
	}
}

// weightVector lists the weights of the miners, in id order.
func weightVector(w Weights) []float64 {
	out := make([]float64, len(w.Miners))
	for i, m := range w.Miners {
		out[i] = m.Weight
	}
	return out
}

// spearman is the rank correlation of x and y, ties given their mean rank.
func spearman(x, y []float64) float64 {
	rx, ry := ranks(x), ranks(y)
	var mx, my float64
	for i := range rx {
		mx += rx[i]
		my += ry[i]
	}
	mx /= float64(len(rx))
	my /= float64(len(ry))
	var sxy, sxx, syy float64
	for i := range rx {
		sxy += (rx[i] - mx) * (ry[i] - my)
		sxx += (rx[i] - mx) * (rx[i] - mx)
		syy += (ry[i] - my) * (ry[i] - my)
	}
	return sxy / math.Sqrt(sxx*syy)
}

func ranks(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmpFloat(x[a], x[b]) })
	r := make([]float64, len(x))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && x[idx[j+1]] == x[idx[i]] {
			j++
		}
		for k := i; k <= j; k++ {
			r[idx[k]] = float64(i+j)/2 + 1
		}
		i = j + 1
	}
	return r
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestSpearman checks the helper on known cases.
func TestSpearman(t *testing.T) {
	for _, c := range []struct {
		x, y []float64
		want float64
	}{
		{[]float64{1, 2, 3, 4}, []float64{10, 20, 30, 40}, 1},
		{[]float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}, -1},
		{[]float64{1, 2, 3, 4, 5}, []float64{5, 6, 7, 8, 7}, 0.8207826816681233},
	} {
		if got := spearman(c.x, c.y); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("spearman(%v, %v) = %v, want %v", c.x, c.y, got, c.want)
		}
	}
}
