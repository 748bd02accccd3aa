package epoch

import (
	"fmt"
	"math/rand"
	"sort"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/sim"
)

// simConfig is the protocol's timing in the simulations: reports every
// 2 s that live 10 s, 5 s to collect a group.
func simConfig() Config {
	return Config{
		Run: "sim", Role: matchmaking.Full, MinGroup: 2, MaxGroup: 16,
		MatchTimeout: 5 * time.Second, DelegateTimeout: 5 * time.Second, ConfirmTimeout: time.Second,
		RoundTimeout: 10 * time.Second, Heartbeat: 2 * time.Second, Expiry: 10 * time.Second,
	}
}

// heterogeneous links: 10–1000 Mbit/s, 5–200 ms one way.
func heterogeneous(rng *rand.Rand) func(int) sim.Link {
	return func(int) sim.Link {
		mbps := 10 * float64(int(1)<<rng.Intn(7)) // 10 … 640
		if rng.Intn(8) == 0 {
			mbps = 1000
		}
		return sim.Link{Uplink: mbps * 1e6 / 8, Downlink: mbps * 1e6 / 8, Latency: time.Duration(5+rng.Intn(196)) * time.Millisecond}
	}
}

// checkOneVersion fails if two miners that applied an epoch's average
// hold different states.
func (s *swarm) checkOneVersion(t testing.TB) {
	t.Helper()
	for e, hs := range s.applied {
		if len(hs) > 1 {
			t.Errorf("epoch %d applied as %d different states: %v", e, len(hs), hs)
		}
	}
	if len(s.lateWaits) > 0 {
		t.Errorf("%d waits past their deadline, e.g. %v", len(s.lateWaits), s.lateWaits[:min(5, len(s.lateWaits))])
	}
}

// checkOneStatePerEpoch fails if live miners at one epoch hold different
// states: the swarm split into versions.
func (s *swarm) checkOneStatePerEpoch(t testing.TB) {
	t.Helper()
	held := map[uint64][32]byte{}
	for _, id := range s.order {
		p := s.peers[id]
		if !p.alive {
			continue
		}
		if h, ok := held[p.m.Epoch()]; ok && h != p.m.Hash() {
			t.Errorf("live miners at epoch %d hold different states: %v", p.m.Epoch(), s.states())
			return
		}
		held[p.m.Epoch()] = p.m.Hash()
	}
}

// states returns the live miners' (epoch, hash) counts.
func (s *swarm) states() map[string]int {
	out := map[string]int{}
	for _, id := range s.order {
		if p := s.peers[id]; p.alive {
			h := p.m.Hash()
			out[fmt.Sprintf("%d/%x", p.m.Epoch(), h[:4])]++
		}
	}
	return out
}

func (s *swarm) maxEpoch() uint64 {
	var e uint64
	for _, p := range s.peers {
		if p.alive {
			e = max(e, p.m.Epoch())
		}
	}
	return e
}

func (s *swarm) summary() string {
	var es []int
	for e := range s.outcomes {
		es = append(es, int(e))
	}
	sort.Ints(es)
	averaged := 0
	for _, e := range es {
		if s.outcomes[uint64(e)].averaged > 0 {
			averaged++
		}
	}
	s.t.Logf("drops: %v", s.reasons)
	s.t.Logf("rejects: %v", s.rejects)
	return fmt.Sprintf("%d epochs with an outcome, %d averaged; %d loads (%d failed), %d alone, %d match messages rejected, %d sim messages",
		len(es), averaged, s.loads, s.loadFails, len(s.alone), s.rejected, s.net.Stats().Sent)
}

func TestFourMinersAverageEveryEpoch(t *testing.T) {
	s := newSwarm(t, 1, simConfig(), 8)
	for i := range 4 {
		s.add(fmt.Sprintf("m%d", i))
	}
	s.net.RunUntil(3 * time.Minute)
	s.checkOneVersion(t)
	t.Log(s.summary(), s.states())
	if e := s.maxEpoch(); e < 10 {
		t.Fatalf("reached epoch %d in 3 virtual minutes, want >= 10", e)
	}
	for e, o := range s.outcomes {
		if o.averaged != 4 || o.dropped != 0 || o.alone != 0 {
			t.Errorf("epoch %d: %+v, want all 4 averaged", e, *o)
		}
	}
	if st := s.states(); len(st) != 1 {
		t.Errorf("miners end in %d states: %v", len(st), st)
	}
}

// TestThousandMinersUnderChurn is issue 14's simulation: 1000 miners in
// groups of at most 16 over heterogeneous links; every epoch's worth of
// time 5% of them crash and 5% new ones join and load the state from
// their peers; 50 epochs. Every state applied for an epoch is the same
// one, no wait outlasts its deadline, and the swarm ends on one state.
func TestThousandMinersUnderChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 simulated miners: about a minute")
	}
	const swarmSize, swarmEpochs = 1000, 50
	start := time.Now()
	rng := rand.New(rand.NewSource(7))
	cfg := simConfig()
	// A swarm of a thousand reports less often: 1000 reports every
	// 10 s reach every peer, and that gossip is most of the simulation.
	cfg.Heartbeat, cfg.Expiry = 10*time.Second, 40*time.Second
	s := newSwarm(t, 7, cfg, 16)
	s.linkOf = heterogeneous(rng)
	s.flush = time.Second
	s.trainTime = func(id string) time.Duration { return time.Duration(500+fnv(id)%1000) * time.Millisecond }
	next := 0
	for range swarmSize {
		s.add(fmt.Sprintf("m%04d", next))
		next++
	}
	const period = 20 * time.Second
	for s.maxEpoch() < swarmEpochs && s.net.Now() < time.Duration(swarmEpochs)*3*period {
		s.net.RunUntil(s.net.Now() + period)
		var alive []string
		for _, id := range s.order {
			if s.peers[id].alive {
				alive = append(alive, id)
			}
		}
		for _, i := range rng.Perm(len(alive))[:swarmSize/20] {
			s.crash(alive[i])
		}
		for range swarmSize / 20 {
			s.add(fmt.Sprintf("m%04d", next))
			next++
		}
	}
	s.net.RunUntil(s.net.Now() + period)
	s.checkOneVersion(t)
	s.checkOneStatePerEpoch(t)
	st := s.states()
	t.Logf("%v virtual, %v wall: epoch %d; %s; end states %v", s.net.Now(), time.Since(start), s.maxEpoch(), s.summary(), st)
	if e := s.maxEpoch(); e < swarmEpochs {
		t.Errorf("reached epoch %d, want %d", e, swarmEpochs)
	}
}
