package sim

import (
	"fmt"
	"time"
)

// EventKind says what happened in a traced Event.
type EventKind int

// The kinds of traced events.
const (
	EventSend          EventKind = iota // a peer sent a message
	EventDeliver                        // a message reached its receiver's handler
	EventDropCrash                      // lost: its sender or receiver had crashed
	EventDropPartition                  // lost: a partition cut its path
	EventTimer                          // a timer fired
)

var kindNames = [...]string{"send", "deliver", "drop-crash", "drop-partition", "timer"}

func (k EventKind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("EventKind(%d)", int(k))
	}
	return kindNames[k]
}

// Event is one traced fact: at virtual time At, a message of Size bytes
// From one peer To another was sent, delivered or dropped, or a timer of
// peer To fired (From is empty).
type Event struct {
	At       time.Duration
	Kind     EventKind
	From, To ID
	Size     int
}

// Trace calls fn with every event from now on (nil stops tracing).
func (n *Network) Trace(fn func(Event)) { n.trace = fn }

func (n *Network) emit(e Event) {
	if n.trace != nil {
		n.trace(e)
	}
}

// Timer is a pending call set by After.
type Timer struct {
	peer    *peer
	fn      func(now time.Duration)
	stopped bool
	fired   bool
}

// Stop cancels the timer; it reports whether the call was still pending.
func (t *Timer) Stop() bool {
	pending := !t.stopped && !t.fired
	t.stopped = true
	return pending
}

// After calls fn at Now()+d, on behalf of peer: if the peer has crashed by
// then, fn is never called. Timers due at the same time fire in the order
// they were set.
func (n *Network) After(peer ID, d time.Duration, fn func(now time.Duration)) (*Timer, error) {
	p := n.peers[peer]
	if p == nil {
		return nil, fmt.Errorf("sim: timer: %w", n.known(peer))
	}
	if d < 0 || fn == nil {
		return nil, fmt.Errorf("sim: timer for %q: want d >= 0 and a function, got %v", peer, d)
	}
	t := &Timer{peer: p, fn: fn}
	n.push(event{at: n.now + d, kind: evTimer, timer: t})
	return t, nil
}

// Step runs the next event, advancing the clock to it; it reports false when
// there is none.
func (n *Network) Step() bool {
	if len(n.queue) == 0 {
		return false
	}
	e := n.queue.pop()
	n.now = e.at
	switch e.kind {
	case evHead:
		n.arriveHead(e.flight)
	case evDeliver:
		n.deliver(e.flight)
	case evTimer:
		n.fire(e.timer)
	}
	return true
}

// RunUntil runs every event due at or before t, then sets the clock to t
// (if it is later than now).
func (n *Network) RunUntil(t time.Duration) {
	for len(n.queue) > 0 && n.queue[0].at <= t {
		n.Step()
	}
	n.now = max(n.now, t)
}

// RunUntilIdle runs events until none is left and returns how many ran.
// A timer that always sets another keeps it running forever: use RunUntil
// for such scripts.
func (n *Network) RunUntilIdle() int {
	steps := 0
	for n.Step() {
		steps++
	}
	return steps
}

func (n *Network) fire(t *Timer) {
	if t.stopped || n.now >= t.peer.crashAt {
		return
	}
	t.fired = true
	n.stats.Timers++
	n.emit(Event{At: n.now, Kind: EventTimer, To: t.peer.id})
	t.fn(n.now)
}

type eventKind int

const (
	evHead    eventKind = iota // a message's first byte reaches the receiver
	evDeliver                  // a message is complete at the receiver
	evTimer
)

type event struct {
	at     time.Duration
	seq    uint64
	kind   eventKind
	flight *flight
	timer  *Timer
}

// push schedules e after every event already scheduled for the same time.
func (n *Network) push(e event) {
	e.seq = n.seq
	n.seq++
	n.queue.push(e)
}

// eventQueue is a 4-ary min-heap on (at, seq): time order, ties in
// scheduling order, so runs are deterministic. It holds the events
// themselves, so ordering them reads no pointer, and four children a
// node keep a queue of a million events 10 levels deep rather than 20.
type eventQueue []event

func (e *event) before(f *event) bool {
	return e.at < f.at || (e.at == f.at && e.seq < f.seq)
}

func (q *eventQueue) push(e event) {
	*q = append(*q, e)
	h := *q
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 4
		if !e.before(&h[parent]) {
			break
		}
		h[i] = h[parent]
		i = parent
	}
	h[i] = e
}

// pop removes and returns the first event; the queue must not be empty.
func (q *eventQueue) pop() event {
	h := *q
	first := h[0]
	last := len(h) - 1
	e := h[last]
	h[last] = event{} // drop its references
	h = h[:last]
	*q = h
	if last == 0 {
		return first
	}
	i := 0
	for {
		c := 4*i + 1
		if c >= last {
			break
		}
		least := c
		for k := c + 1; k < min(c+4, last); k++ {
			if h[k].before(&h[least]) {
				least = k
			}
		}
		if !h[least].before(&e) {
			break
		}
		h[i] = h[least]
		i = least
	}
	h[i] = e
	return first
}
