package matchmaking

import (
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/sim"
)

// swarm drives one Matchmaker per simulated peer over node/sim: it sends
// what the state machines return and ticks them at their NextTick.
type swarm struct {
	t        *testing.T
	net      *sim.Network
	ids      []string
	mm       map[string]*Matchmaker
	armed    map[string]time.Duration
	rejected map[error]int // rejected messages by sentinel
}

var sentinels = []error{ErrBadMessage, ErrWrongEpoch, ErrDuplicate, ErrLate, ErrNotReady}

// newSwarm adds n peers p000… with cfg (Self filled in) and link.
func newSwarm(t *testing.T, seed int64, n int, cfg Config, link sim.Link) *swarm {
	t.Helper()
	s := &swarm{
		t:        t,
		net:      sim.New(rand.New(rand.NewSource(seed))),
		mm:       make(map[string]*Matchmaker),
		armed:    make(map[string]time.Duration),
		rejected: make(map[error]int),
	}
	for i := range n {
		id := fmt.Sprintf("p%03d", i)
		c := cfg
		c.Self = id
		m, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		s.ids = append(s.ids, id)
		s.mm[id] = m
		h := func(now time.Duration, from sim.ID, msg sim.Message) {
			out, err := m.Receive(now, string(from), msg.Payload.(Msg))
			s.reject(err)
			s.dispatch(id, out)
		}
		if err := s.net.AddPeer(sim.ID(id), link, h); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// announce makes peer id announce r at virtual time at.
func (s *swarm) announce(id string, at time.Duration, r Ready) {
	s.after(id, at, func(now time.Duration) {
		out, err := s.mm[id].Announce(now, r)
		s.reject(err)
		s.dispatch(id, out)
	})
	s.arm(id)
}

// announceAll makes every peer announce a full Ready with weight 1 at 0.
func (s *swarm) announceAll(epoch uint64) {
	for _, id := range s.ids {
		s.announce(id, 0, Ready{Run: "run", Epoch: epoch, Peer: id, Weight: 1, Bandwidth: 1e6})
	}
}

func (s *swarm) reject(err error) {
	if err == nil {
		return
	}
	for _, e := range sentinels {
		if errors.Is(err, e) {
			s.rejected[e]++
			return
		}
	}
	s.t.Errorf("rejection without a sentinel: %v", err)
}

func (s *swarm) after(id string, at time.Duration, fn func(time.Duration)) {
	if _, err := s.net.After(sim.ID(id), max(at-s.net.Now(), 0), fn); err != nil {
		s.t.Fatal(err)
	}
}

func (s *swarm) dispatch(from string, out []Outgoing) {
	for _, o := range out {
		size := 64
		if o.Msg.View != nil {
			size = 16 + 48*len(o.Msg.View.Members)
		}
		msg := sim.Message{Size: size, Payload: o.Msg}
		if o.To != "" {
			s.send(from, o.To, msg)
			continue
		}
		for _, to := range s.ids {
			if to != from {
				s.send(from, to, msg)
			}
		}
	}
	s.arm(from)
}

func (s *swarm) send(from, to string, msg sim.Message) {
	if err := s.net.Send(sim.ID(from), sim.ID(to), msg); err != nil {
		s.t.Fatal(err)
	}
}

// arm sets a timer for the peer's next tick, once per distinct time.
func (s *swarm) arm(id string) {
	m := s.mm[id]
	at, ok := m.NextTick()
	if !ok || s.armed[id] == at+1 {
		return
	}
	s.armed[id] = at + 1 // +1: the zero value means unarmed
	s.after(id, at, func(now time.Duration) { s.dispatch(id, m.Tick(now)) })
}

// groups returns every peer's group or error after the run.
func (s *swarm) groups() (map[string]Group, map[string]error) {
	gs, errs := make(map[string]Group), make(map[string]error)
	for _, id := range s.ids {
		g, err := s.mm[id].Group()
		if err != nil {
			errs[id] = err
			continue
		}
		gs[id] = g
	}
	return gs, errs
}

// checkConsistent asserts the safety property: every formed peer is in its
// own group, and every member of it that formed holds the identical group.
// It returns the distinct groups formed.
func checkConsistent(t *testing.T, s *swarm, gs map[string]Group) map[string]Group {
	t.Helper()
	byKey := make(map[string]Group)
	for id, g := range gs {
		if !contains(g.Members, id) {
			t.Fatalf("%s formed %s without itself", id, g.Key)
		}
		for _, x := range g.Members {
			if h, ok := gs[x.ID]; ok && !reflect.DeepEqual(g, h) {
				t.Fatalf("%s and %s formed different views of one group:\n%v\n%v", id, x.ID, g.Members, h.Members)
			}
		}
		byKey[g.Key] = g
	}
	return byKey
}
