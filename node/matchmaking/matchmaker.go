package matchmaking

import (
	"errors"
	"fmt"
	"time"
)

// Defaults for the zero values of Config's optional fields.
const (
	DefaultConfirmTimeout = time.Second
	DefaultMaxRounds      = 3
)

// Config sets up one peer's matchmaking for one run and epoch. Times are
// on the caller's clock (virtual time in tests), as offsets from its origin.
type Config struct {
	Run   string
	Self  string
	Epoch uint64
	// MinGroup and MaxGroup bound every group's size, 1 ≤ MinGroup ≤ MaxGroup.
	MinGroup, MaxGroup int
	// Deadline is when collecting Ready announcements ends.
	Deadline time.Duration
	// Expected, when > 0, ends collecting as soon as that many peers (self
	// included) are ready, before the deadline. Aux members do not count
	// toward it: they contribute nothing.
	Expected int
	// ExpectedAux is how many aux members (self included) the caller
	// expects, the trusted validators that follow this epoch. A validator
	// announces once it has heard a contributor's announcement, so it
	// comes a message delay after the first contributor; where the
	// contributors all finish within that delay they would be complete
	// first and leave it out. Once Expected contributors are ready,
	// collecting goes on until ExpectedAux aux members are too, for at most
	// ConfirmTimeout (the bound on the message delay) and never past the
	// deadline: a validator that does not come holds the miners up by that
	// much at most.
	ExpectedAux int
	// Validators, when set, says which peers may join as aux: an aux
	// announcement from any other peer is refused (ErrUntrustedAux), since
	// an aux member owns a span and so reduces the others' values. Nil
	// accepts every aux.
	Validators func(peer string) bool
	// Excluded, when set, says which peers may not join as contributors:
	// those the run's validators caught cheating, for their probation
	// (node/verdicts). Their announcements are refused (ErrExcluded).
	Excluded func(peer string) bool
	// MaxWeight, when > 0, is the most another contributor may announce
	// as its Weight: the samples one epoch of the run's schedule holds (a
	// diloco epoch's inner steps, gradients mode's target batch). A claim
	// above it is refused (ErrWeight): weights are self-declared, and one
	// claiming more samples than it can have trained would take that much
	// of the mean. This peer's own announcement is not checked: if it
	// claims too much, the others refuse it.
	MaxWeight float64
	// ConfirmTimeout is the length of a confirmation round: round r ends
	// (r+1) ConfirmTimeouts after collecting ends. It should exceed the
	// message delay (package doc). Zero means DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
	// MaxRounds bounds the confirmation rounds, so matchmaking ends at most
	// MaxRounds ConfirmTimeouts after collecting. Zero means
	// DefaultMaxRounds.
	MaxRounds int
}

// Group is an agreed all-reduce group: every member holds the same Members,
// in the same order, and the same Key.
type Group struct {
	Run     string // the matchmaking's run, as its Ready announcements name it
	Epoch   uint64
	Members []Member // ordered by ID
	Key     string   // run, epoch and a digest of Members
}

// Msg is what matchmakers send each other: exactly one of Ready (one or
// more announcements, as a gossip message may batch them) or View.
type Msg struct {
	Ready []Ready
	View  *View
}

// View is a peer's view of its group in one confirmation round. Formed
// marks the view its sender formed, sent in answer to a later round's view.
type View struct {
	Run     string
	Epoch   uint64
	Round   int
	Formed  bool
	Members []Member
}

// Outgoing is a message to send. To is a peer id, or "" for every peer of
// the swarm (gossip in production).
type Outgoing struct {
	To  string
	Msg Msg
}

// Matchmaker is one peer's matchmaking state machine for one epoch. It
// never touches the network or a clock: the caller feeds it Announce,
// Receive and Tick, sends what they return, and calls Tick again at NextTick.
type Matchmaker struct {
	cfg      Config
	ready    []Ready
	index    readyIndex    // finds a peer's position in ready
	contrib  int           // ready peers that are not aux
	aux      int           // ready aux peers
	closeBy  time.Duration // collecting ends here (Deadline, or earlier once the contributors are complete)
	closed   bool
	closedAt time.Duration

	round    int
	roundEnd time.Duration
	view     []Member                    // this round's view of the group
	mine     [][]Member                  // own view in each round so far
	got      map[string][]Member         // views received this round
	pending  map[int]map[string][]Member // views for rounds not yet started
	open     []Member                    // view of the first round that ended in silence, not disagreement (wait.go)
	agreed   map[string]bool             // members that sent this peer's own view in such a round
	waiting  []Member                    // while waiting for a formed answer, the members it may come from
	agree    int                         // members left in this peer's view when it started waiting
	done     bool
	formedAt int
	group    Group
	err      error
}

// New returns a Matchmaker for cfg.
func New(cfg Config) (*Matchmaker, error) {
	m := &Matchmaker{}
	if err := m.Reset(cfg); err != nil {
		return nil, err
	}
	return m, nil
}

// Reset makes m a Matchmaker for cfg, as New does, keeping the memory it
// collected announcements in: a peer that matches every epoch need not
// allocate for a thousand announcements each time. Nothing m returned
// before is changed. On error m is unchanged.
func (m *Matchmaker) Reset(cfg Config) error {
	switch {
	case cfg.Self == "":
		return errors.New("matchmaking: config: empty Self")
	case cfg.MinGroup < 1 || cfg.MaxGroup < cfg.MinGroup:
		return fmt.Errorf("matchmaking: config: want 1 <= MinGroup <= MaxGroup, got %d and %d", cfg.MinGroup, cfg.MaxGroup)
	case cfg.Deadline < 0 || cfg.ConfirmTimeout < 0 || cfg.MaxRounds < 0 || cfg.Expected < 0 || cfg.ExpectedAux < 0:
		return fmt.Errorf("matchmaking: config: negative Deadline, ConfirmTimeout, MaxRounds, Expected or ExpectedAux: %+v", cfg)
	}
	if cfg.ConfirmTimeout == 0 {
		cfg.ConfirmTimeout = DefaultConfirmTimeout
	}
	if cfg.MaxRounds == 0 {
		cfg.MaxRounds = DefaultMaxRounds
	}
	ready, index, pending, agreed := m.ready, m.index, m.pending, m.agreed
	clear(ready) // no stale announcements kept alive
	if cap(ready) < cfg.Expected {
		ready = make([]Ready, 0, cfg.Expected)
	}
	if pending == nil {
		pending, agreed = make(map[int]map[string][]Member), make(map[string]bool)
	}
	clear(pending)
	clear(agreed)
	*m = Matchmaker{cfg: cfg, ready: ready[:0], index: index, pending: pending, agreed: agreed, closeBy: cfg.Deadline}
	m.index.reset(nil, cfg.Expected)
	return nil
}

// Announce records this peer's own Ready and returns it for broadcast.
func (m *Matchmaker) Announce(now time.Duration, r Ready) ([]Outgoing, error) {
	out := m.Tick(now)
	if r.Peer != m.cfg.Self {
		return out, fmt.Errorf("matchmaking: announce as %q, self is %q: %w", r.Peer, m.cfg.Self, ErrBadMessage)
	}
	more, err := m.receiveReady(now, r)
	out = append(out, more...)
	if err != nil {
		return out, fmt.Errorf("matchmaking: announce: %w", err)
	}
	return append(out, Outgoing{Msg: Msg{Ready: []Ready{r}}}), nil
}

// Receive handles a message from peer from. A rejected message changes
// nothing and comes back as an error that wraps one of the sentinels; in a
// batch of announcements each is taken or refused on its own, and the
// error names the first refused. The sender of an announcement may be a
// gossip relay: authenticating Ready.Peer is the transport's job.
func (m *Matchmaker) Receive(now time.Duration, from string, msg Msg) ([]Outgoing, error) {
	out := m.Tick(now)
	var more []Outgoing
	var err error
	switch {
	case len(msg.Ready) > 0 && msg.View == nil:
		for _, r := range msg.Ready {
			o, e := m.receiveReady(now, r)
			more = append(more, o...)
			if err == nil {
				err = e
			}
		}
	case msg.View != nil && msg.Ready == nil:
		more, err = m.receiveView(now, from, *msg.View)
	default:
		err = fmt.Errorf("want exactly one of Ready and View: %w", ErrBadMessage)
	}
	if err != nil {
		err = fmt.Errorf("matchmaking: %s from %q: %w", m.cfg.Self, from, err)
	}
	return append(out, more...), err
}

// Tick advances time: at the deadline collecting ends and confirmation
// starts; at a round's end a round that has not completed moves on.
func (m *Matchmaker) Tick(now time.Duration) []Outgoing {
	if m.done {
		return nil
	}
	if !m.closed {
		if now < m.closeBy {
			return nil
		}
		return m.close(now)
	}
	if now >= m.roundEnd {
		return m.advance(now)
	}
	return nil
}

// NextTick is when the caller should call Tick next; false once done.
func (m *Matchmaker) NextTick() (time.Duration, bool) {
	switch {
	case m.done:
		return 0, false
	case !m.closed:
		return m.closeBy, true
	}
	return m.roundEnd, true
}

// Done reports whether matchmaking ended, with a group or an error.
func (m *Matchmaker) Done() bool { return m.done }

// Group returns the formed group, or why there is none: ErrPending before
// Done, else ErrBelowMin, ErrNoGroup, ErrNoAgreement or ErrNotReady (this
// peer never announced).
func (m *Matchmaker) Group() (Group, error) {
	if !m.done {
		return Group{}, ErrPending
	}
	if m.err != nil {
		return Group{}, m.err
	}
	g := m.group
	g.Members = append([]Member(nil), g.Members...)
	return g, nil
}

// receiveReady records an announcement made before collecting ended.
func (m *Matchmaker) receiveReady(now time.Duration, r Ready) ([]Outgoing, error) {
	if err := r.check(m.cfg.Run, m.cfg.Epoch); err != nil {
		return nil, err
	}
	if m.closed {
		return nil, fmt.Errorf("ready from %q at %v, deadline %v: %w", r.Peer, now, m.cfg.Deadline, ErrLate)
	}
	if r.Role == Aux && r.Peer != m.cfg.Self && m.cfg.Validators != nil && !m.cfg.Validators(r.Peer) {
		return nil, fmt.Errorf("aux ready from %q: %w", r.Peer, ErrUntrustedAux)
	}
	if r.Role != Aux && r.Peer != m.cfg.Self && m.cfg.Excluded != nil && m.cfg.Excluded(r.Peer) {
		return nil, fmt.Errorf("ready from %q: %w", r.Peer, ErrExcluded)
	}
	if r.Role != Aux && r.Peer != m.cfg.Self && m.cfg.MaxWeight > 0 && r.Weight > m.cfg.MaxWeight {
		return nil, fmt.Errorf("ready from %q with weight %v, at most %v: %w", r.Peer, r.Weight, m.cfg.MaxWeight, ErrWeight)
	}
	if i, ok := m.index.find(m.ready, r.Peer); ok {
		if m.ready[i] == r {
			return nil, nil // a gossip echo: nothing new
		}
		return nil, fmt.Errorf("second, different ready from %q: %w", r.Peer, ErrDuplicate)
	}
	m.ready = append(m.ready, r)
	m.index.add(m.ready)
	if r.Role != Aux {
		m.contrib++
	} else {
		m.aux++
	}
	return m.checkComplete(now), nil
}

// checkComplete ends collecting once the expected contributors and aux
// members are ready; with the contributors complete, the expected
// validators get one message delay more.
func (m *Matchmaker) checkComplete(now time.Duration) []Outgoing {
	if m.cfg.Expected > 0 && m.contrib >= m.cfg.Expected {
		if m.aux >= m.cfg.ExpectedAux {
			return m.close(now)
		}
		m.closeBy = min(m.closeBy, now+m.cfg.ConfirmTimeout)
	}
	return nil
}

// Unexpect lowers Expected by one, while collecting: a contributor the
// caller counted cannot take part (its announcement was refused, say), so
// the others need not wait for it until the deadline.
func (m *Matchmaker) Unexpect(now time.Duration) []Outgoing {
	if m.closed || m.done || m.cfg.Expected <= 1 {
		return nil
	}
	m.cfg.Expected--
	return m.checkComplete(now)
}

// close ends collecting and starts round 0 with this peer's group in the
// partition of its ready set.
func (m *Matchmaker) close(now time.Duration) []Outgoing {
	m.closed = true
	m.closedAt = now
	if _, ok := m.index.find(m.ready, m.cfg.Self); !ok {
		return m.fail(fmt.Errorf("matchmaking: %s never announced: %w", m.cfg.Self, ErrNotReady))
	}
	if g := partitionGroup(m.cfg.Run, m.cfg.Epoch, m.ready, m.cfg.MinGroup, m.cfg.MaxGroup, m.cfg.Self); g != nil {
		return m.startRound(now, 0, g, nil)
	}
	if len(m.ready) < m.cfg.MinGroup {
		return m.fail(fmt.Errorf("matchmaking: %d ready, min %d: %w", len(m.ready), m.cfg.MinGroup, ErrBelowMin))
	}
	return m.fail(fmt.Errorf("matchmaking: %s left over among %d ready: %w", m.cfg.Self, len(m.ready), ErrNoGroup))
}

func (m *Matchmaker) fail(err error) []Outgoing {
	m.done = true
	m.err = err
	return nil
}

func contains(members []Member, id string) bool {
	for _, x := range members {
		if x.ID == id {
			return true
		}
	}
	return false
}
