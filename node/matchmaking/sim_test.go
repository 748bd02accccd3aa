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
	doneAt   map[string]time.Duration // virtual time each peer finished
	rejected map[error]int            // rejected messages by sentinel
	slowest  time.Duration            // longest a delivered message took

	// relays > 0 models gossip: a broadcast goes to relay p(i mod relays),
	// which batches what it gets for flush and then sends it to every peer.
	relays int
	flush  time.Duration
	batch  map[string][]Ready
}

// gossip is an announcement on its way to a relay.
type gossip []Ready

// stamped is a payload with the virtual time it was sent.
type stamped struct {
	at      time.Duration
	payload any
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
		doneAt:   make(map[string]time.Duration),
		rejected: make(map[error]int),
		batch:    make(map[string][]Ready),
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
			st := msg.Payload.(stamped)
			s.slowest = max(s.slowest, now-st.at)
			if g, ok := st.payload.(gossip); ok {
				s.relay(id, g)
				return
			}
			out, err := m.Receive(now, string(from), st.payload.(Msg))
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
		size := 64 * len(o.Msg.Ready)
		if o.Msg.View != nil {
			size = 16 + 48*len(o.Msg.View.Members)
		}
		msg := sim.Message{Size: size, Payload: o.Msg}
		switch {
		case o.To != "":
			s.send(from, o.To, msg)
		case s.relays > 0:
			var i int
			fmt.Sscanf(from, "p%d", &i)
			relay := s.ids[i%s.relays]
			if relay == from {
				s.relay(from, o.Msg.Ready)
			} else {
				s.send(from, relay, sim.Message{Size: msg.Size, Payload: gossip(o.Msg.Ready)})
			}
		default:
			s.broadcast(from, msg)
		}
	}
	s.arm(from)
}

func (s *swarm) broadcast(from string, msg sim.Message) {
	for _, to := range s.ids {
		if to != from {
			s.send(from, to, msg)
		}
	}
}

// relay batches announcements at a relay and sends the batch on at its
// next flush, to every other peer and to the relay's own Matchmaker.
func (s *swarm) relay(id string, rs []Ready) {
	if len(s.batch[id]) == 0 {
		s.after(id, s.net.Now()+s.flush, func(now time.Duration) {
			b := s.batch[id]
			delete(s.batch, id)
			s.broadcast(id, sim.Message{Size: 64 * len(b), Payload: Msg{Ready: b}})
			out, err := s.mm[id].Receive(now, id, Msg{Ready: b})
			s.reject(err)
			s.dispatch(id, out)
		})
	}
	s.batch[id] = append(s.batch[id], rs...)
}

func (s *swarm) send(from, to string, msg sim.Message) {
	msg.Payload = stamped{s.net.Now(), msg.Payload}
	if err := s.net.Send(sim.ID(from), sim.ID(to), msg); err != nil {
		s.t.Fatal(err)
	}
}

// arm sets a timer for the peer's next tick, once per distinct time, and
// notes when the peer finished.
func (s *swarm) arm(id string) {
	m := s.mm[id]
	if _, ok := s.doneAt[id]; !ok && m.Done() {
		s.doneAt[id] = s.net.Now()
	}
	at, ok := m.NextTick()
	if !ok || s.armed[id] == at+1 {
		return
	}
	s.armed[id] = at + 1 // +1: the zero value means unarmed
	s.after(id, at, func(now time.Duration) { s.dispatch(id, m.Tick(now)) })
}

// lastDone is when the last peer finished.
func (s *swarm) lastDone() time.Duration {
	var last time.Duration
	for _, at := range s.doneAt {
		last = max(last, at)
	}
	return last
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
