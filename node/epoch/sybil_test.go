package epoch

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/progress"
	"github.com/dtrain-dev/dtrain/node/sim"
)

// sybils are fresh identities that never train: every heartbeat each one
// reports a poisoned state and offers it, and serves it to whoever asks
// (its bytes match the hash it reports, so a load of it succeeds). The
// attacker sees the honest swarm's epoch: a third of the identities claim
// the next epoch (the successor rule), a third the swarm's epoch (the
// diverged rule) and a third an epoch of 2^40 (the behind rule).
type sybils struct {
	s      *swarm
	ids    []string
	poison float32
	held   map[[32]byte][]float32 // poisoned states by hash
	loaded int                    // loads of a poisoned state that completed
	// mimic makes every identity report the state the most advanced
	// honest miner holds instead, and never announce.
	mimic bool
}

// honestState is the state of the live honest miner furthest ahead.
func (sy *sybils) honestState() (uint64, [32]byte) {
	var e uint64
	var h [32]byte
	for _, p := range sy.s.miners {
		if p.alive && p.m.Epoch() >= e {
			e, h = p.m.Epoch(), p.m.Hash()
		}
	}
	return e, h
}

func (s *swarm) addSybils(n int, poison float32, mimic bool) *sybils {
	sy := &sybils{s: s, poison: poison, held: map[[32]byte][]float32{}, mimic: mimic}
	for i := range n {
		id := fmt.Sprintf("sybil%02d", i)
		sy.ids = append(sy.ids, id)
		if err := s.net.AddPeer(sim.ID(id), sim.Link{Latency: 5 * time.Millisecond}, sy.serve(id)); err != nil {
			s.t.Fatal(err)
		}
	}
	sy.tick(s.net.Now())
	return sy
}

// state returns the poisoned state of epoch e and its hash.
func (sy *sybils) state(e uint64) [32]byte {
	theta := make([]float32, sy.s.dim)
	for i := range theta {
		theta[i] = sy.poison
	}
	h := stateHash(e, theta)
	sy.held[h] = theta
	return h
}

func (sy *sybils) tick(now time.Duration) {
	e := sy.s.maxEpoch()
	for i, id := range sy.ids {
		epoch := []uint64{e + 1, e, 1 << 40}[i%3]
		hash := sy.state(epoch)
		if sy.mimic {
			epoch, hash = sy.honestState()
		}
		r := progress.Report{Peer: id, Epoch: epoch, StateHash: hash, Offers: true, Time: int64(now / time.Millisecond)}
		relay := sy.s.relays[int(fnv(id))%len(sy.s.relays)]
		_ = sy.s.net.Send(sim.ID(id), relay, sim.Message{Size: 100, Payload: gossipBatch{reportMsg{r}}})
	}
	_, _ = sy.s.net.After(sim.ID(sy.ids[0]), sy.s.cfg.Heartbeat, sy.tick)
}

func (sy *sybils) serve(id string) sim.Handler {
	return func(now time.Duration, from sim.ID, msg sim.Message) {
		req, ok := msg.Payload.(loadReq)
		if !ok {
			return
		}
		resp := loadResp{epoch: req.epoch, hash: req.hash}
		if theta, ok := sy.held[req.hash]; ok {
			resp.theta = slices.Clone(theta)
			sy.loaded++
		}
		_ = sy.s.net.Send(sim.ID(id), from, sim.Message{Size: 16 + 4*len(resp.theta), Payload: resp})
	}
}

// poisoned is how many live honest miners hold a poisoned state.
func (sy *sybils) poisoned() int {
	n := 0
	for _, p := range sy.s.miners {
		if p.alive && slices.Contains(p.theta, sy.poison) {
			n++
		}
	}
	return n
}

// sybilRun runs honest miners for 30 s, then Sybil identities (if any)
// for two minutes, with every report a vote (countAll) or votes from vouched peers
// only, and returns the swarm, the attack and the honest swarm's epoch
// when the attack began.
func sybilRun(t *testing.T, honest, identities int, countAll bool) (*swarm, *sybils, uint64) {
	s := newSwarm(t, 11, simConfig(), 8)
	for i := range honest {
		s.add(fmt.Sprintf("m%03d", i)).m.countAll = countAll
	}
	s.net.RunUntil(30 * time.Second)
	start := s.maxEpoch()
	var sy *sybils
	if identities > 0 {
		sy = s.addSybils(identities, 1e6, false)
	}
	s.net.RunUntil(150 * time.Second)
	t.Log(s.summary(), s.states())
	return s, sy, start
}

// Issue 17: fifty fresh identities voting for a poisoned state, at the
// next epoch, at the swarm's and far ahead, and serving it, against 8
// honest miners (one group) and 100 (seven groups and the delegates'
// round). Every honest miner averaged with others before the attack, so
// it counts only its partners' reports and the run's validators': none
// loads the poison, and the swarm goes on averaging. With every report a
// vote, as before, the poison is loaded: that is what the defence is
// worth.
func TestSybilsCannotChooseTheState(t *testing.T) {
	for _, honest := range []int{8, 100} {
		t.Run(fmt.Sprint(honest, " honest"), func(t *testing.T) {
			clean, _, cleanStart := sybilRun(t, honest, 0, false)
			pace := clean.maxEpoch() - cleanStart
			s, sy, start := sybilRun(t, honest, 50, false)
			s.checkOneVersion(t)
			if n := sy.poisoned(); n != 0 || sy.loaded != 0 {
				t.Errorf("%d honest miners hold the poisoned state (%d loads of it served)", n, sy.loaded)
			}
			if e := s.maxEpoch(); 2*(e-start) < pace {
				t.Errorf("the swarm went from epoch %d to %d in the two minutes of the attack, %d epochs without it", start, e, pace)
			}
			if st := s.states(); len(st) != 1 {
				t.Errorf("miners end in %d states: %v", len(st), st)
			}
			t.Logf("defended: %d epochs during the attack, %d without it", s.maxEpoch()-start, pace)

			undefended, sy, _ := sybilRun(t, honest, 50, true)
			if sy.poisoned() == 0 {
				t.Errorf("with every report a vote, no miner took the poisoned state: the attack tests nothing")
			}
			t.Logf("undefended: %d of %d miners hold the poisoned state; %d loads of it served; epoch %d", sy.poisoned(), honest, sy.loaded, undefended.maxEpoch())
		})
	}
}

// decisionAfterListening starts a machine at (5, own) that hears reports
// (peer, hash) at epoch 5, all offering, and returns its first decision.
func decisionAfterListening(t *testing.T, validators []string, partners []string, own [32]byte, reports map[string][32]byte) []Action {
	t.Helper()
	m, err := New(Config{Run: "r", Self: "a", Role: matchmaking.Full, MinGroup: 2, MaxGroup: 4,
		MatchTimeout: 4 * time.Second, DelegateTimeout: 4 * time.Second, RoundTimeout: time.Second,
		Heartbeat: time.Second, Expiry: 10 * time.Second, Validators: validators})
	if err != nil {
		t.Fatal(err)
	}
	m.Start(0, 5, own)
	m.notePartners(partners)
	for p, h := range reports {
		if _, err := m.Observe(time.Second, progress.Report{Peer: p, Epoch: 5, StateHash: h, Offers: true, Time: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	return m.Tick(3 * time.Second)
}

func loads(acts []Action) (Action, bool) {
	for _, a := range acts {
		if a.Kind == Load {
			return a, true
		}
	}
	return Action{}, false
}

// The diverged rule: a tie between this peer's state and another at its
// epoch keeps its own (the lowest hash no longer wins, so grinding a low
// hash buys nothing); a vouched majority elsewhere is loaded; strangers
// are not votes once a vouched peer is live, and a run's validator is one.
func TestDivergedRuleCountsVouchedVotes(t *testing.T) {
	own, low := [32]byte{9}, [32]byte{1}
	cases := []struct {
		name       string
		validators []string
		partners   []string
		reports    map[string][32]byte
		load       bool
	}{
		{"tie with a partner keeps its own", nil, []string{"b"}, map[string][32]byte{"b": low}, false},
		{"two partners elsewhere", nil, []string{"b", "c"}, map[string][32]byte{"b": low, "c": low}, true},
		{"strangers outvote one partner", nil, []string{"b"},
			map[string][32]byte{"b": own, "s1": low, "s2": low, "s3": low}, false},
		{"a fresh peer counts every report", nil, nil, map[string][32]byte{"s1": low, "s2": low}, true},
		{"a validator anchors a fresh peer", []string{"v"}, nil,
			map[string][32]byte{"v": own, "s1": low, "s2": low, "s3": low}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, loaded := loads(decisionAfterListening(t, c.validators, c.partners, own, c.reports))
			if loaded != c.load {
				t.Errorf("loads another state: %v, want %v", loaded, c.load)
			}
		})
	}
}

// Issue 17: fifty fresh identities that report the honest swarm's state
// and never announce were counted among the peers expected at the epoch,
// so every mean fell short of its quorum (half of them) and the swarm
// stopped. The quorum counts no more expected peers than have announced:
// the identities now only keep each window open to its deadline.
func TestSybilReportsDoNotStopTheSwarm(t *testing.T) {
	run := func(sybils int, countAll bool) (start, end uint64) {
		s := newSwarm(t, 13, simConfig(), 8)
		for i := range 8 {
			p := s.add(fmt.Sprintf("m%d", i))
			p.m.countAll = countAll
		}
		s.net.RunUntil(30 * time.Second)
		start = s.maxEpoch()
		if sybils > 0 {
			s.addSybils(sybils, 1e6, true)
		}
		s.net.RunUntil(150 * time.Second)
		s.checkOneVersion(t)
		return start, s.maxEpoch()
	}
	s0, e0 := run(0, false)
	s1, e1 := run(50, false)
	clean, attacked := e0-s0, e1-s1
	t.Logf("epochs in the two minutes: %d without identities, %d with 50", clean, attacked)
	if 2*attacked < clean {
		t.Errorf("50 identities slowed the swarm from %d to %d epochs in two minutes", clean, attacked)
	}
}
