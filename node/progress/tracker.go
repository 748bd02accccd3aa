package progress

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultExpiry is the Expiry of a Config that leaves it zero; hivemind's
// progress tracker lets a peer's record live for 60 s as well.
const DefaultExpiry = 60 * time.Second

// Sentinel errors for reports whose time does not fit now; the Tracker
// ignores such reports.
var (
	// ErrStale marks a report that had expired before it was observed, as
	// gossip may deliver after a partition heals.
	ErrStale = errors.New("progress: report expired")
	// ErrFuture marks a report dated Expiry or more ahead of now: the
	// sender's clock is wrong, and holding the report would let it outlive
	// its sender.
	ErrFuture = errors.New("progress: report dated in the future")
	// ErrFull marks a new peer's report refused because the Tracker holds
	// Config.MaxPeers peers.
	ErrFull = errors.New("progress: tracker full")
)

// Config configures a Tracker.
type Config struct {
	// Self is this peer's id. Its own report counts like any other (feed it
	// to Observe once the peer holds the swarm's state), but Donors never
	// names it.
	Self string
	// TargetSamples is the swarm's samples per epoch in gradients mode
	// (target_batch_size); 0 means not used: Ready is false and
	// EstimateReady is Never.
	TargetSamples uint64
	// Expiry drops a peer whose latest report is this old; 0 means
	// DefaultExpiry.
	Expiry time.Duration
	// MaxPeers bounds the peers held at once; 0 means DefaultMaxPeers. A
	// new peer's report is refused (ErrFull) while that many hold live
	// reports: ids cost nothing, so without a bound one sender relaying
	// reports of fresh ids would grow the tracker without end.
	MaxPeers int
}

// DefaultMaxPeers is Config.MaxPeers' default: far more miners than a run
// has, at about 64 bytes each.
const DefaultMaxPeers = 1 << 17

// Tracker holds the latest report of every peer and answers questions about
// the swarm. It is not safe for concurrent use.
type Tracker struct {
	cfg Config
	// peers holds one report per peer, densely, a cache line each (held),
	// so that the passes over the swarm (Each, Live) read one array rather
	// than walk a map; index finds a peer in it.
	peers []held
	index peerIndex
	// states counts the held reports by state (States), but for those
	// counted out once expired; minSeen is the lowest held seen, latest
	// the latest now the Tracker was given.
	states  stateTable
	minSeen int64
	latest  time.Duration
	// The sweep of expired reports runs when a new peer arrives and the
	// tracker has doubled since the last sweep, or an Expiry has passed: a
	// thousand peers joining at once cost a thousand index inserts, not a
	// million visits, and the tracker never holds more than twice its live
	// peers plus those that reported within one Expiry.
	prunedAt  time.Duration
	prunedLen int
}

// NewTracker returns a Tracker that holds no reports.
func NewTracker(cfg Config) *Tracker {
	if cfg.Expiry <= 0 {
		cfg.Expiry = DefaultExpiry
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	return &Tracker{cfg: cfg, minSeen: countedOut}
}

// Observe records r if it is the peer's latest. Reports of one peer are
// ordered by (Epoch, Samples, Time): a report below the one held (a gossip
// echo or reordering) is ignored without error, so the held report does not
// depend on arrival order; exact ties are broken by the encoding. Reports
// for any epoch, including ones ahead of the swarm, are kept. Observe
// returns ErrBadReport for a malformed report, ErrStale for one that
// expired before now and ErrFuture for one dated Expiry or more ahead.
func (t *Tracker) Observe(now time.Duration, r Report) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("observe: %w", err)
	}
	switch a := t.age(now, r); {
	case a >= t.cfg.Expiry:
		return fmt.Errorf("observe %q sent at %d ms, now %v: %w", r.Peer, r.Time, now, ErrStale)
	case a <= -t.cfg.Expiry:
		return fmt.Errorf("observe %q sent at %d ms, now %v: %w", r.Peer, r.Time, now, ErrFuture)
	}
	t.latest = max(t.latest, now)
	k := stateKey{r.Epoch, r.StateHash}
	i, ok := t.index.find(t.peers, r.Peer)
	if !ok {
		// Full, it sweeps at most every Expiry/16: a flood of new ids
		// then costs one comparison each, not a pass over the tracker.
		full := len(t.peers) >= t.cfg.MaxPeers
		if len(t.peers) >= 2*t.prunedLen || now-t.prunedAt >= t.cfg.Expiry || (full && now-t.prunedAt >= t.cfg.Expiry/16) {
			t.prune(now)
		}
		if len(t.peers) >= t.cfg.MaxPeers {
			return fmt.Errorf("observe %q: %d peers held: %w", r.Peer, len(t.peers), ErrFull)
		}
		t.peers = append(t.peers, held{seen: r.Time})
		h := &t.peers[len(t.peers)-1]
		h.set(r, t.states.intern(k))
		t.index.add(t.peers)
		t.states.count(h.state, t.offersToOthers(h.peer, h.offers), 1)
		t.minSeen = min(t.minSeen, h.seen)
		return nil
	}
	h := &t.peers[i]
	if !t.replaces(r, h) {
		return nil
	}
	state := h.state
	if t.states.entries[state].stateKey != k {
		state = t.states.intern(k)
	}
	if h.seen == countedOut {
		h.seen = r.Time
	} else {
		h.seen = min(h.seen, r.Time)
		t.states.count(h.state, t.offersToOthers(h.peer, h.offers), -1)
	}
	if state != h.state {
		t.states.release(h.state)
	}
	h.set(r, state)
	t.states.count(state, t.offersToOthers(h.peer, h.offers), 1)
	t.minSeen = min(t.minSeen, h.seen)
	return nil
}

// newer reports whether a should replace b, two reports of one peer.
func newer(a, b Report) bool {
	switch {
	case a.Epoch != b.Epoch:
		return a.Epoch > b.Epoch
	case a.Samples != b.Samples:
		return a.Samples > b.Samples
	case a.Time != b.Time:
		return a.Time > b.Time
	}
	ea, _ := a.Marshal() // both were validated on the way in
	eb, _ := b.Marshal()
	return bytes.Compare(ea, eb) > 0
}

// replaces is newer(r, the report h holds), without building that report
// but for an exact tie.
func (t *Tracker) replaces(r Report, h *held) bool {
	switch epoch := t.states.entries[h.state].epoch; {
	case r.Epoch != epoch:
		return r.Epoch > epoch
	case r.Samples != h.samples:
		return r.Samples > h.samples
	case r.Time != h.time:
		return r.Time > h.time
	}
	return newer(r, t.report(h))
}

// prune forgets peers whose reports have expired, keeping the others in
// their order.
func (t *Tracker) prune(now time.Duration) {
	kept := slices.DeleteFunc(t.peers, func(h held) bool {
		if t.young(now, h.time) {
			return false
		}
		if h.seen != countedOut {
			t.states.count(h.state, t.offersToOthers(h.peer, h.offers), -1)
		}
		t.states.release(h.state)
		return true
	})
	if len(kept) < len(t.peers) {
		t.index.reset(kept)
		t.peers = kept // DeleteFunc zeroed the tail: no dangling peer ids
	}
	t.prunedAt, t.prunedLen = now, max(len(t.peers), 8)
}

// age is how long ago r was sent; negative for a report dated ahead of now.
func (t *Tracker) age(now time.Duration, r Report) time.Duration {
	return now - time.Duration(r.Time)*time.Millisecond
}

// liveAt reports whether a report sent at ms counts at now: sent less
// than Expiry ago, and not dated Expiry or more ahead of now (a wrong
// clock must not keep it alive).
func (t *Tracker) liveAt(now time.Duration, ms int64) bool {
	a := now - time.Duration(ms)*time.Millisecond
	return a < t.cfg.Expiry && a > -t.cfg.Expiry
}

// Live returns the live peers' latest reports, sorted by peer id.
func (t *Tracker) Live(now time.Duration) []Report {
	out := make([]Report, 0, len(t.peers))
	for i := range t.peers {
		if h := &t.peers[i]; t.liveAt(now, h.time) {
			out = append(out, t.report(h))
		}
	}
	slices.SortFunc(out, func(a, b Report) int { return strings.Compare(a.Peer, b.Peer) })
	return out
}

// at returns the live reports at epoch, sorted by peer id.
func (t *Tracker) at(now time.Duration, epoch uint64) []Report {
	return slices.DeleteFunc(t.Live(now), func(r Report) bool { return r.Epoch != epoch })
}

// Peers returns the ids of the live peers at epoch, sorted.
func (t *Tracker) Peers(now time.Duration, epoch uint64) []string {
	rs := t.at(now, epoch)
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.Peer
	}
	return ids
}

// SwarmEpoch returns the epoch the swarm is at: the highest epoch e such
// that a strict majority of the live peers (⌊n/2⌋+1 of n) is at e or
// beyond; 0 when no peer is live.
//
// Why a strict majority: the swarm epoch tells peers below it to load
// state, so it must not be set by a minority. Taking the maximum, as
// hivemind does, lets one peer announcing epoch 10^9 send everybody to load
// a state nobody has; "at least half" still lets one liar decide a 2-peer
// swarm. With a strict majority, peers announcing too high an epoch move
// it only if they are more than half of the live peers. The price is that
// with the swarm split exactly in half the lower epoch wins: a peer loads
// state one averaging later than it could, which is cheaper than loading
// from the wrong side. It is the (⌊n/2⌋+1)-th largest epoch, which no
// report order can change.
func (t *Tracker) SwarmEpoch(now time.Duration) uint64 {
	live := t.Live(now)
	if len(live) == 0 {
		return 0
	}
	epochs := make([]uint64, len(live))
	for i, r := range live {
		epochs[i] = r.Epoch
	}
	slices.Sort(epochs)
	quorum := len(epochs)/2 + 1
	return epochs[len(epochs)-quorum]
}

// Behind reports whether the swarm epoch is ahead of selfEpoch: the caller
// should load state from Donors(now, SwarmEpoch(now)). Peers advance at
// slightly different moments, so callers may want Behind to hold for a
// while (an averaging round) before paying for a download.
func (t *Tracker) Behind(now time.Duration, selfEpoch uint64) bool {
	return t.SwarmEpoch(now) > selfEpoch
}

// Report returns peer's report if it is live at now.
func (t *Tracker) Report(now time.Duration, peer string) (Report, bool) {
	if i, ok := t.index.find(t.peers, peer); ok && t.liveAt(now, t.peers[i].time) {
		return t.report(&t.peers[i]), true
	}
	return Report{}, false
}

// Each calls fn with every live report, in no particular order: for
// callers that count over the swarm and need neither a copy nor an order.
func (t *Tracker) Each(now time.Duration, fn func(Report)) {
	for i := range t.peers {
		if h := &t.peers[i]; t.liveAt(now, h.time) {
			fn(t.report(h))
		}
	}
}
