package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"time"
)

// ID names a simulated peer.
type ID string

// Message is what one peer sends another: Size bytes on the wire, carrying
// an opaque Payload that the network never looks into.
type Message struct {
	Size    int
	Payload any
}

// Handler receives a peer's messages. It runs at virtual time now and may
// Send messages or set timers; it must not call Step or Run*.
type Handler func(now time.Duration, from ID, msg Message)

// Link is a peer's access link. Rates are in bytes/s; 0 means unlimited.
// Latency is the one-way latency of this end; a message's link latency is
// the sum of both ends' (unless SetLatency overrides it) plus a random extra
// in [0, sender's Jitter + receiver's Jitter).
type Link struct {
	Uplink, Downlink float64
	Latency, Jitter  time.Duration
}

// ErrUnknownPeer is returned for an ID that was never added.
var ErrUnknownPeer = errors.New("sim: unknown peer")

// never is the crash time of a peer that does not crash.
const never = time.Duration(math.MaxInt64)

type peer struct {
	id       ID
	link     Link
	handler  Handler
	rates    []rateChange // in order of at; rates[0].at = 0
	upFree   time.Duration
	downFree time.Duration
	crashAt  time.Duration
}

// rateChange sets a peer's rates from at on.
type rateChange struct {
	at       time.Duration
	up, down float64
}

// Network is a simulated network with a virtual clock. Its zero value is not
// usable; call New. It is not safe for concurrent use: one goroutine drives
// it, and handlers run inside Step.
type Network struct {
	rng        *rand.Rand
	now        time.Duration
	seq        uint64
	queue      eventQueue
	peers      map[ID]*peer
	latency    map[[2]ID]time.Duration
	partitions []partition
	trace      func(Event)
	stats      Stats
}

// Stats counts what the network has done so far.
type Stats struct {
	Sent, Delivered, Dropped int
	BytesDelivered           int64
	Timers                   int
}

// New returns an empty network at virtual time 0. rng is the only source of
// randomness (latency jitter); it may be nil when no link has Jitter.
func New(rng *rand.Rand) *Network {
	return &Network{
		rng:     rng,
		peers:   make(map[ID]*peer),
		latency: make(map[[2]ID]time.Duration),
	}
}

// AddPeer adds a peer with its access link and message handler (nil drops
// its messages).
func (n *Network) AddPeer(id ID, link Link, h Handler) error {
	if _, ok := n.peers[id]; ok {
		return fmt.Errorf("sim: add peer %q: already added", id)
	}
	if err := checkRates(link.Uplink, link.Downlink); err != nil {
		return fmt.Errorf("sim: add peer %q: %w", id, err)
	}
	if link.Latency < 0 || link.Jitter < 0 {
		return fmt.Errorf("sim: add peer %q: negative latency %v or jitter %v", id, link.Latency, link.Jitter)
	}
	if link.Jitter > 0 && n.rng == nil {
		return fmt.Errorf("sim: add peer %q: jitter needs the *rand.Rand passed to New", id)
	}
	n.peers[id] = &peer{
		id:      id,
		link:    link,
		handler: h,
		rates:   []rateChange{{up: link.Uplink, down: link.Downlink}},
		crashAt: never,
	}
	return nil
}

// SetHandler replaces a peer's message handler.
func (n *Network) SetHandler(id ID, h Handler) error {
	p, ok := n.peers[id]
	if !ok {
		return fmt.Errorf("sim: set handler of %q: %w", id, ErrUnknownPeer)
	}
	p.handler = h
	return nil
}

// SetLatency sets the one-way latency (before jitter) from one peer to
// another, replacing the sum of their links' latencies.
func (n *Network) SetLatency(from, to ID, d time.Duration) error {
	if err := n.known(from, to); err != nil {
		return fmt.Errorf("sim: set latency: %w", err)
	}
	if d < 0 {
		return fmt.Errorf("sim: set latency %s→%s: negative %v", from, to, d)
	}
	n.latency[[2]ID{from, to}] = d
	return nil
}

// Now is the virtual time since the network started.
func (n *Network) Now() time.Duration { return n.now }

// Stats reports the counts so far.
func (n *Network) Stats() Stats { return n.stats }

// Send queues msg from one peer to another at the current virtual time. A
// message from a crashed peer is dropped (and traced); errors are only for
// unknown peers or a negative size. A message to oneself is delivered at
// once, through the event queue, without touching any link.
func (n *Network) Send(from, to ID, msg Message) error {
	s, r := n.peers[from], n.peers[to]
	if s == nil || r == nil {
		return fmt.Errorf("sim: send: %w", n.known(from, to))
	}
	if msg.Size < 0 {
		return fmt.Errorf("sim: send %s→%s: negative size %d", from, to, msg.Size)
	}
	n.stats.Sent++
	f := &flight{from: s, to: r, msg: msg, sent: n.now}
	n.emit(Event{At: n.now, Kind: EventSend, From: from, To: to, Size: msg.Size})
	if n.now >= s.crashAt {
		n.drop(f, EventDropCrash)
		return nil
	}
	if from == to {
		f.upEnd = n.now
		n.push(event{at: n.now, kind: evDeliver, flight: f})
		return nil
	}
	lat, ok := n.latency[[2]ID{from, to}]
	if !ok {
		lat = s.link.Latency + r.link.Latency
	}
	if j := s.link.Jitter + r.link.Jitter; j > 0 {
		lat += time.Duration(n.rng.Int63n(int64(j)))
	}
	u0 := max(n.now, s.upFree)
	f.upEnd = u0 + transfer(msg.Size, s.rateAt(u0).up)
	f.latency = lat
	s.upFree = f.upEnd
	n.push(event{at: u0 + lat, kind: evHead, flight: f})
	return nil
}

// flight is a message on its way.
type flight struct {
	from, to *peer
	msg      Message
	sent     time.Duration
	upEnd    time.Duration // its last byte has left the sender's uplink
	latency  time.Duration
}

// arriveHead books the receiver's downlink for a message whose first byte
// has just arrived, and schedules its delivery.
func (n *Network) arriveHead(f *flight) {
	r := f.to
	d0 := max(n.now, r.downFree)
	d1 := d0 + transfer(f.msg.Size, r.rateAt(d0).down)
	r.downFree = d1
	n.push(event{at: max(d1, f.upEnd+f.latency), kind: evDeliver, flight: f})
}

// deliver hands a message to its receiver unless a fault lost it.
func (n *Network) deliver(f *flight) {
	s, r := f.from, f.to
	switch {
	case f.upEnd > s.crashAt || n.now >= r.crashAt:
		n.drop(f, EventDropCrash)
		return
	case n.partitioned(s.id, r.id, f.sent, n.now):
		n.drop(f, EventDropPartition)
		return
	}
	n.stats.Delivered++
	n.stats.BytesDelivered += int64(f.msg.Size)
	n.emit(Event{At: n.now, Kind: EventDeliver, From: s.id, To: r.id, Size: f.msg.Size})
	if r.handler != nil {
		r.handler(n.now, s.id, f.msg)
	}
}

func (n *Network) drop(f *flight, kind EventKind) {
	n.stats.Dropped++
	n.emit(Event{At: n.now, Kind: kind, From: f.from.id, To: f.to.id, Size: f.msg.Size})
}

func (n *Network) known(ids ...ID) error {
	for _, id := range ids {
		if _, ok := n.peers[id]; !ok {
			return fmt.Errorf("%q: %w", id, ErrUnknownPeer)
		}
	}
	return nil
}

// rateAt is the peer's rates in force at t.
func (p *peer) rateAt(t time.Duration) rateChange {
	for i := len(p.rates) - 1; i > 0; i-- {
		if p.rates[i].at <= t {
			return p.rates[i]
		}
	}
	return p.rates[0]
}

// transfer is the time to carry size bytes at rate bytes/s (0: unlimited).
func transfer(size int, rate float64) time.Duration {
	if rate == 0 || size == 0 {
		return 0
	}
	d := math.Round(float64(size) / rate * float64(time.Second))
	if d > float64(never/4) {
		return never / 4 // keeps sums of transfer times from overflowing
	}
	return time.Duration(d)
}

func checkRates(up, down float64) error {
	for _, r := range []float64{up, down} {
		if math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
			return fmt.Errorf("rate %v bytes/s, want finite and >= 0 (0: unlimited)", r)
		}
	}
	return nil
}
