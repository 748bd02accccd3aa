package sim

import (
	"container/heap"
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
	peer    ID
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
	if err := n.known(peer); err != nil {
		return nil, fmt.Errorf("sim: timer: %w", err)
	}
	if d < 0 || fn == nil {
		return nil, fmt.Errorf("sim: timer for %q: want d >= 0 and a function, got %v", peer, d)
	}
	t := &Timer{peer: peer, fn: fn}
	n.push(&event{at: n.now + d, kind: evTimer, timer: t})
	return t, nil
}

// Step runs the next event, advancing the clock to it; it reports false when
// there is none.
func (n *Network) Step() bool {
	if len(n.queue) == 0 {
		return false
	}
	e := heap.Pop(&n.queue).(*event)
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
	if t.stopped || n.now >= n.peers[t.peer].crashAt {
		return
	}
	t.fired = true
	n.stats.Timers++
	n.emit(Event{At: n.now, Kind: EventTimer, To: t.peer})
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
func (n *Network) push(e *event) {
	e.seq = n.seq
	n.seq++
	heap.Push(&n.queue, e)
}

// eventQueue is a min-heap on (at, seq): time order, ties in scheduling
// order, so runs are deterministic.
type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}
