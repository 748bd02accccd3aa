package sim

import (
	"fmt"
	"sort"
	"time"
)

// Crash makes peer fail at virtual time at (now, if at is past): from then
// on it sends nothing, receives nothing and its timers do not fire. Messages
// in flight to it are dropped, and so are its own messages whose last byte
// had not left its uplink by at. An earlier crash time wins.
func (n *Network) Crash(id ID, at time.Duration) error {
	p, ok := n.peers[id]
	if !ok {
		return fmt.Errorf("sim: crash %q: %w", id, ErrUnknownPeer)
	}
	p.crashAt = min(p.crashAt, max(at, n.now))
	return nil
}

// Crashed reports whether peer has crashed by now.
func (n *Network) Crashed(id ID) bool {
	p, ok := n.peers[id]
	return ok && n.now >= p.crashAt
}

// partition cuts every path between a and b during [from, until).
type partition struct {
	a, b        map[ID]bool
	from, until time.Duration
}

// Partition cuts the network between groups a and b, both ways, during
// [from, until): a message between them is lost if it was on its way at any
// moment of that window (sent before until and delivered after from).
// Traffic inside each group, and to peers in neither, is untouched.
func (n *Network) Partition(a, b []ID, from, until time.Duration) error {
	if until < from {
		return fmt.Errorf("sim: partition ends at %v before it starts at %v", until, from)
	}
	p := partition{a: make(map[ID]bool), b: make(map[ID]bool), from: from, until: until}
	for _, side := range []struct {
		ids []ID
		set map[ID]bool
	}{{a, p.a}, {b, p.b}} {
		for _, id := range side.ids {
			if err := n.known(id); err != nil {
				return fmt.Errorf("sim: partition: %w", err)
			}
			side.set[id] = true
		}
	}
	for id := range p.a {
		if p.b[id] {
			return fmt.Errorf("sim: partition: peer %q is on both sides", id)
		}
	}
	n.partitions = append(n.partitions, p)
	return nil
}

// partitioned reports whether a partition cut the path between from and to
// while a message sent at sent was on its way until delivered.
func (n *Network) partitioned(from, to ID, sent, delivered time.Duration) bool {
	for _, p := range n.partitions {
		across := (p.a[from] && p.b[to]) || (p.b[from] && p.a[to])
		if across && sent < p.until && delivered > p.from {
			return true
		}
	}
	return false
}

// SetBandwidth changes peer's uplink and downlink rates (bytes/s, 0:
// unlimited) from virtual time at on. A transmission takes the rate in force
// when it starts on that link.
func (n *Network) SetBandwidth(id ID, at time.Duration, up, down float64) error {
	p, ok := n.peers[id]
	if !ok {
		return fmt.Errorf("sim: set bandwidth of %q: %w", id, ErrUnknownPeer)
	}
	if err := checkRates(up, down); err != nil {
		return fmt.Errorf("sim: set bandwidth of %q: %w", id, err)
	}
	if at < 0 {
		return fmt.Errorf("sim: set bandwidth of %q: negative time %v", id, at)
	}
	c := rateChange{at: at, up: up, down: down}
	i := sort.Search(len(p.rates), func(i int) bool { return p.rates[i].at > at })
	if i > 0 && p.rates[i-1].at == at {
		p.rates[i-1] = c
		return nil
	}
	p.rates = append(p.rates, rateChange{})
	copy(p.rates[i+1:], p.rates[i:])
	p.rates[i] = c
	return nil
}
