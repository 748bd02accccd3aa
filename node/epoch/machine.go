package epoch

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/progress"
)

// Config sets up a Machine. Durations are on the caller's clock.
type Config struct {
	Run  string
	Self string
	// Role is what this peer does in rounds: matchmaking.Full for a miner.
	Role matchmaking.Role
	// MinGroup and MaxGroup bound the all-reduce groups (matchmaking).
	MinGroup, MaxGroup int
	// MatchTimeout is the grid of the windows in which peers collect
	// announcements for their epoch's group (a window closes 1/2 to 3/2
	// of it after a peer announces); DelegateTimeout the same for the
	// delegates' round across groups. ConfirmTimeout bounds matchmaking's confirmation
	// rounds (0: matchmaking's default).
	MatchTimeout, DelegateTimeout, ConfirmTimeout time.Duration
	// RoundTimeout is the caller's all-reduce deadline: a group member
	// waits for its delegates' result at most 3/2 DelegateTimeout +
	// RoundTimeout + 2 heartbeats.
	RoundTimeout time.Duration
	// Heartbeat is how often a live peer repeats its report; Expiry is how
	// long a report counts (progress.Config). Listen is how long a peer
	// hears reports after Start before its first decision (0: 2.5
	// heartbeats).
	Heartbeat, Expiry, Listen time.Duration
	// History is how many epochs of its own hashes a peer remembers to
	// tell its lineage from another (0: 64).
	History int
	// TargetSamples is the swarm's samples per epoch in gradients mode
	// (target_batch_size), 0 otherwise: while the swarm is about to reach
	// it the peer reports more often (nextReport).
	TargetSamples uint64
	// Validators are the peers the run trusts as validators: the only
	// ones whose aux announcements this peer's matchmaking takes (an aux
	// member owns a span, so it reduces the others' values), and peers
	// that never contribute, so its matchmaking neither expects them nor
	// waits for them.
	Validators []string
	// Excluded, when set, says whether the run's validators exclude peer
	// from the groups of epoch (node/verdicts): its announcements are
	// refused and it is not expected, as a validator is not.
	Excluded func(peer string, epoch uint64) bool
	// MaxWeight, when > 0, bounds a contributor's announced weight in the
	// epoch's matchmaking (the samples an epoch of the run's schedule
	// holds; matchmaking.Config.MaxWeight), and MaxGroup times it a
	// delegate's, whose weight is its group's.
	MaxWeight float64
}

func (c *Config) validate() error {
	switch {
	case c.Run == "" || c.Self == "":
		return errors.New("epoch: config: empty Run or Self")
	case c.MinGroup < 1 || c.MaxGroup < c.MinGroup:
		return fmt.Errorf("epoch: config: want 1 <= MinGroup <= MaxGroup, got %d and %d", c.MinGroup, c.MaxGroup)
	case c.MatchTimeout <= 0 || c.DelegateTimeout <= 0 || c.RoundTimeout <= 0 || c.Heartbeat <= 0 || c.Expiry <= c.Heartbeat:
		return fmt.Errorf("epoch: config: want positive timeouts and Expiry > Heartbeat: %+v", *c)
	}
	if c.Listen <= 0 {
		c.Listen = c.Heartbeat*2 + c.Heartbeat/2
	}
	if c.History <= 0 {
		c.History = 64
	}
	return nil
}

// Phase is what a Machine is waiting for.
type Phase int

// The phases, in the order an epoch goes through them.
const (
	Listening  Phase = iota // hearing reports after Start
	Loading                 // a Load action is out: waiting for Loaded
	Training                // a Train action is out: waiting for Trained
	Matching                // forming the epoch's group
	Averaging               // an Average action is out: waiting for Averaged
	Delegating              // a delegate forming the round across groups
	Awaiting                // a member waiting for its delegates' state
	Applying                // an Apply action is out: waiting for Advanced
	Backoff                 // a load failed: waiting before deciding again
	Holding                 // nobody heard yet: holding the update until it may apply it alone
	Weighing                // holding a group's mean while only strangers hold a next state
)

var phaseNames = [...]string{"listening", "loading", "training", "matching", "averaging", "delegating", "awaiting", "applying", "backoff", "holding", "weighing"}

func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// Machine is one peer's epoch protocol. It is not safe for concurrent use.
type Machine struct {
	cfg     Config
	tracker *progress.Tracker

	epoch   uint64
	hash    [32]byte
	history map[uint64][32]byte // own start hashes by epoch
	live    bool                // holds the swarm's state: reports and offers it
	phase   Phase
	until   time.Duration // the current wait's deadline (Listening, Awaiting, Backoff, Holding)

	started   time.Duration
	lastHeard time.Duration // last report from another peer; -1: never
	published time.Duration
	samples   uint64
	rate      float64
	loss      float64 // the training loss reports carry; NaN: none

	weight float64 // this peer's samples in the epoch
	expect int     // peers expected at the epoch's matchmaking
	// neighbours are the peers the caller knows to be on the run, reported
	// or not (SetNeighbours).
	neighbours []string
	group      matchmaking.Group
	mm         *matchmaking.Matchmaker
	mmKey      string
	// overweight holds, for each peer whose announcement claimed more
	// samples than an epoch holds, the epoch of its latest: such a peer
	// is not expected for overweightEpochs epochs after (it drops, and
	// lags behind, which would otherwise keep it expected).
	overweight map[string]uint64
	// unexpected are the peers the current matchmaking does not count on:
	// barred when it started (expected) or lowered since (noteOverweight).
	unexpected map[string]bool
	ready      *matchmaking.Ready // this peer's announcement, shared by every message that repeats it
	stage      int
	groups     int // groups the epoch's ready peers split into
	inbox      inbox
	keys       [2]string // matchmaking key prefixes of stages 1 and 2 for hash
	// ahead holds who reported each state of the next epoch while this
	// peer looks for a group or awaits its delegates, so that the
	// thousand reports of a large swarm cost a map insert each, and only
	// a state with two holders brings the census out.
	ahead map[[32]byte]map[string]bool
	// bandwidth is announced with cfg.Role (SetLink).
	bandwidth float64
	// counts is the census of the last decision, kept for its buffers,
	// and voted the same over the vouched peers (votes).
	counts, voted census
	// partners holds, for each peer this one completed a round with, the
	// epoch of the latest (notePartners).
	partners map[string]uint64
	// countAll makes every live report a vote, as before partners were
	// kept: the tests measure what the Sybil defence is worth by it.
	countAll bool
	// distrusted holds the peers Distrust named, each with the last epoch
	// it stays out of this peer's groups.
	distrusted map[string]uint64
	// announcers are the other contributors that announced for this
	// epoch from this peer's state (at most maxAnnouncers): the quorum
	// counts no more expected peers than these.
	announcers map[string]bool
	// taken is the round a Weighing peer holds the mean of.
	taken taken
	// contribution is this epoch's committed update (SetContribution),
	// whose root the stage-1 announcement carries.
	contribution *allreduce.Contribution
	// groupContribution is the group's committed mean (SetGroupContribution),
	// whose root a delegate's stage-2 announcement carries.
	groupContribution *allreduce.Contribution
}

// New returns a Machine for cfg. Call Start next.
func New(cfg Config) (*Machine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Machine{
		loss:       math.NaN(),
		cfg:        cfg,
		tracker:    progress.NewTracker(progress.Config{Self: cfg.Self, Expiry: cfg.Expiry}),
		history:    make(map[uint64][32]byte),
		lastHeard:  -1,
		announcers: map[string]bool{},
	}
	m.inbox.init()
	return m, nil
}

// Epoch is the epoch the peer's state starts; Hash that state's hash.
func (m *Machine) Epoch() uint64 { return m.epoch }

// Hash is the hash of the state the peer starts its epoch from.
func (m *Machine) Hash() [32]byte { return m.hash }

// Groups is how many groups the ready peers of this peer's last stage-1
// matchmaking split into: more than one means a delegates' round follows.
func (m *Machine) Groups() int { return m.groups }

// Phase is what the Machine is waiting for.
func (m *Machine) Phase() Phase { return m.phase }

// SwarmEpoch is the swarm's epoch as the live reports make it now
// (progress.Tracker.SwarmEpoch).
func (m *Machine) SwarmEpoch(now time.Duration) uint64 { return m.tracker.SwarmEpoch(now) }

// Peers lists the other live peers at epoch, sorted.
func (m *Machine) Peers(now time.Duration, epoch uint64) []string {
	return slices.DeleteFunc(m.tracker.Peers(now, epoch), func(p string) bool { return p == m.cfg.Self })
}

// Start begins at now with the peer's state (from a checkpoint, or a fresh
// model at epoch 0): it listens for Config.Listen before deciding whether
// to load the swarm's state or train.
func (m *Machine) Start(now time.Duration, epoch uint64, hash [32]byte) []Action {
	m.started, m.published = now, now
	m.setState(epoch, hash, true)
	m.phase, m.until = Listening, now+m.cfg.Listen
	return nil
}

// setState makes (epoch, hash) the peer's state; reset forgets its
// lineage (a loaded state's history is the donors').
func (m *Machine) setState(epoch uint64, hash [32]byte, reset bool) {
	if reset {
		clear(m.history)
	}
	m.epoch, m.hash, m.keys = epoch, hash, [2]string{}
	clear(m.ahead)
	clear(m.announcers)
	m.history[epoch] = hash
	delete(m.history, epoch-uint64(m.cfg.History))
	// The rate stays: it is the peer's speed, the best estimate of how
	// fast it trains the new epoch until it reports otherwise.
	m.samples, m.weight, m.contribution, m.groupContribution = 0, 0, nil, nil
	// A peer that loads a state others already announced for (it caught
	// up while they trained) holds their announcements in its inbox: they
	// count toward OthersReady, so it contributes what it has trained by
	// the time their window closes rather than a whole epoch too late.
	if m.inbox.announced(epoch, m.prefix(1), m.cfg.Self) {
		m.inbox.ready[epoch] = true
	}
}

// Observe takes a progress report from the run's gossip. A report the
// tracker refuses (malformed, expired, from the future) is returned as
// the error and changes nothing.
func (m *Machine) Observe(now time.Duration, r progress.Report) ([]Action, error) {
	if r.Peer == m.cfg.Self {
		return nil, nil
	}
	if err := m.tracker.Observe(now, r); err != nil {
		return nil, err
	}
	m.lastHeard = now
	switch {
	case m.phase == Holding:
		return m.checkHold(now), nil
	case m.phase == Weighing && m.noteAhead(r):
		return m.checkWeighing(now), nil
	case m.phase == Awaiting && m.noteAhead(r):
		// A later state has appeared that may end the wait early; the
		// deadline is Tick's.
		return m.checkAwait(now), nil
	case m.phase == Matching && m.noteAhead(r):
		// The swarm moved on while this peer looks for a group of its
		// epoch (it finished the epoch after the others' window closed):
		// nobody is left to average with, and by the window's end the
		// others would be a further epoch ahead, waiting for it as a
		// peer one epoch behind. Load their state now instead.
		if act, ok := m.target(now); ok {
			return append([]Action{{Kind: Restore, Epoch: m.epoch, Reason: "the swarm moved on during matchmaking"}}, m.load(act)...), nil
		}
	}
	return nil, nil
}

// SetProgress updates the samples this peer has trained in its epoch and
// its rate, for its next report.
func (m *Machine) SetProgress(samples uint64, rate float64) { m.samples, m.rate = samples, rate }

// SetLoss sets the training loss this peer's reports carry from the next
// one on (the epoch's running mean); NaN, or a value float32 cannot hold,
// sends none.
func (m *Machine) SetLoss(loss float64) { m.loss = loss }

// SetLink sets the role and the measured bandwidth (bytes/s, 0 for not
// measured) this peer announces from its next matchmaking on: a miner that
// cannot accept inbound connections turns client. A bandwidth that is not
// finite and positive counts as not measured.
func (m *Machine) SetLink(role matchmaking.Role, bandwidth float64) {
	if !(bandwidth > 0 && bandwidth <= math.MaxFloat64) {
		bandwidth = 0
	}
	m.cfg.Role, m.bandwidth = role, bandwidth
}

// SetNeighbours tells the machine which peers the caller knows to be on
// the run (a miner's gossip neighbours), for the count of peers its next
// matchmaking expects: those without a live report count too.
func (m *Machine) SetNeighbours(ids []string) { m.neighbours = slices.Clone(ids) }

// Trained says the peer's local work for its epoch is done, with weight
// samples behind it (0 for a peer that contributes nothing).
func (m *Machine) Trained(now time.Duration, weight float64) []Action {
	if m.phase != Training {
		return nil
	}
	m.weight = weight
	if act, ok := m.target(now); ok {
		// The swarm moved on while this peer trained: its work is for a
		// state nobody will average with.
		return append([]Action{{Kind: Restore, Epoch: m.epoch, Reason: "the swarm moved on during training"}}, m.load(act)...)
	}
	return m.startMatch(now, 1, m.weight)
}

// Averaged reports the end of the round an Average action asked for:
// contributors are the ids the mean is over and weight their summed
// weight, or err says why the round failed.
func (m *Machine) Averaged(now time.Duration, stage int, contributors []string, weight float64, err error) []Action {
	if m.phase != Averaging || stage != m.stage {
		return nil
	}
	if err == nil && len(contributors) < 2 {
		err = fmt.Errorf("a mean over %d contributors", len(contributors))
	}
	if err != nil {
		return m.fail(now, fmt.Sprintf("all-reduce: %v", err))
	}
	m.notePartners(contributors)
	if m.cfg.Role == matchmaking.Aux {
		// An aux member takes no mean (allreduce.Result): it waits for the
		// state its group's contributors apply, as a group member waits for
		// its delegates', and loads it by the successor rule.
		m.phase, m.until = Awaiting, now+m.cfg.DelegateTimeout*3/2+m.cfg.RoundTimeout+2*m.cfg.Heartbeat
		return m.checkAwait(now)
	}
	m.taken = taken{stage: stage, contributors: contributors, weight: weight}
	switch act, strangers := m.successor(now, m.group); {
	case act.Kind == Load:
		// Others outside this group already hold the epoch's average:
		// this group was late, and its mean would be a second version.
		return append([]Action{{Kind: Restore, Epoch: m.epoch, Reason: "the epoch was averaged without this group"}}, m.load(act)...)
	case strangers:
		// Only peers this one never averaged with hold a state of the
		// next epoch: a part of the swarm it has not met yet, or a crowd
		// of fresh identities. It keeps the mean a little while for a
		// vouched peer to hold that state too (its partners load it within
		// a heartbeat if it is the swarm's), and takes its own
		// mean after that.
		m.phase, m.until = Weighing, now+m.cfg.Heartbeat
		return nil
	}
	return m.take(now)
}

// taken is a round's outcome that a Weighing peer holds: what it takes
// (take) if no vouched peer holds a state of the next epoch in time.
type taken struct {
	stage        int
	contributors []string
	weight       float64
}

// take goes on with the mean of the round m.taken: it applies it, or a
// group's delegate carries it into the round across groups, or a member
// waits for its delegates.
func (m *Machine) take(now time.Duration) []Action {
	stage, contributors, weight := m.taken.stage, m.taken.contributors, m.taken.weight
	if need := m.quorum(stage); 2*len(contributors) < need {
		return m.fail(now, fmt.Sprintf("a mean over %d contributors of the %d expected: no quorum", len(contributors), need))
	}
	if stage == 1 && m.groups > 1 {
		// Several groups averaged this epoch: only the delegates' round
		// gives everyone the same state.
		if Delegate(contributors) == m.cfg.Self {
			return m.startMatch(now, 2, weight)
		}
		m.phase, m.until = Awaiting, now+m.cfg.DelegateTimeout*3/2+m.cfg.RoundTimeout+2*m.cfg.Heartbeat
		return append([]Action{{Kind: Restore, Epoch: m.epoch, Reason: "the group's delegate averages across groups"}}, m.checkAwait(now)...)
	}
	m.phase = Applying
	return []Action{{Kind: Apply, Epoch: m.epoch, Stage: stage, Contributors: len(contributors)}}
}

// Delegate is the member of a group that carries its mean into the
// delegates' round when an epoch's ready peers split into several groups:
// the lowest id among the round's contributors ("" for none).
func Delegate(contributors []string) string {
	if len(contributors) == 0 {
		return ""
	}
	return slices.Min(contributors)
}

// checkWeighing ends a Weighing peer's wait: it loads the next state once
// a vouched peer holds it too, or takes its own mean at the deadline.
func (m *Machine) checkWeighing(now time.Duration) []Action {
	if act, _ := m.successor(now, m.group); act.Kind == Load {
		return append([]Action{{Kind: Restore, Epoch: m.epoch, Reason: "the epoch was averaged without this group"}}, m.load(act)...)
	}
	if now >= m.until {
		return m.take(now)
	}
	return nil
}

// Advanced says the peer applied its epoch's update (Apply or
// ApplyAlone) and now holds the state of the next epoch, of hash hash.
func (m *Machine) Advanced(now time.Duration, hash [32]byte) []Action {
	if m.phase != Applying {
		return nil
	}
	m.setState(m.epoch+1, hash, false)
	return m.decide(now)
}

// ApplyFailed says the peer could not take the mean an Apply action
// handed it (a group member sent values the mean or the step cannot hold):
// the epoch ends as a failed round does, dropped, and the peer keeps the
// epoch's start state.
func (m *Machine) ApplyFailed(now time.Duration, why string) []Action {
	if m.phase != Applying {
		return nil
	}
	return m.fail(now, "apply: "+why)
}

// Loaded reports the end of a Load: the peer now holds (epoch, hash), or
// err says why the load failed (the peer kept its state).
func (m *Machine) Loaded(now time.Duration, epoch uint64, hash [32]byte, err error) []Action {
	if m.phase != Loading {
		return nil
	}
	if err != nil {
		m.phase, m.until = Backoff, now+m.cfg.Heartbeat
		return nil
	}
	m.setState(epoch, hash, true)
	return m.decide(now)
}

// Tick advances time: heartbeats, the end of listening, matchmaking's
// deadlines and a member's wait for its delegates.
func (m *Machine) Tick(now time.Duration) []Action {
	var out []Action
	if m.live && now >= m.nextReport() {
		out = append(out, m.publish(now))
	}
	switch m.phase {
	case Listening, Backoff:
		if now >= m.until {
			out = append(out, m.decide(now)...)
		}
	case Matching, Delegating:
		out = append(out, m.matchOut(now, m.mm.Tick(now))...)
		out = append(out, m.matchDone(now)...)
	case Awaiting:
		out = append(out, m.checkAwait(now)...)
	case Holding:
		out = append(out, m.checkHold(now)...)
	case Weighing:
		out = append(out, m.checkWeighing(now)...)
	}
	return out
}

// NoTick is NextTick's answer when nothing is due until the caller feeds
// the Machine (a peer loading its first state has no report to repeat).
const NoTick = time.Duration(math.MaxInt64)

// NextTick is when the caller should call Tick next, or NoTick. Only a
// live peer repeats its report: one that has not yet held the swarm's
// state is woken by its own deadlines alone, not every millisecond from
// its first missed heartbeat on.
func (m *Machine) NextTick() time.Duration {
	next := NoTick
	if m.live {
		next = m.nextReport()
	}
	switch m.phase {
	case Listening, Backoff, Awaiting, Holding, Weighing:
		next = min(next, m.until)
	case Matching, Delegating:
		if t, ok := m.mm.NextTick(); ok {
			next = min(next, t)
		}
	}
	return next
}

// decide is the decision at the start of an epoch: load the swarm's
// state when this peer is behind, off its lineage or has a successor to
// take, else train.
func (m *Machine) decide(now time.Duration) []Action {
	if act, ok := m.target(now); ok {
		return m.load(act)
	}
	m.live = true
	m.phase, m.samples = Training, 0
	return []Action{m.publish(now), {Kind: Train, Epoch: m.epoch}}
}

// publish returns this peer's report as of now.
func (m *Machine) publish(now time.Duration) Action {
	m.published = now
	rate := m.rate
	if m.phase != Training {
		rate = 0 // idle: its samples no longer grow
	}
	r := progress.Report{
		Peer: m.cfg.Self, Epoch: m.epoch, Samples: m.samples, SamplesPerSec: rate,
		StateHash: m.hash, Offers: true, Time: int64(now / time.Millisecond),
	}
	if math.Abs(m.loss) <= math.MaxFloat32 {
		r.HasLoss, r.Loss = true, float32(m.loss)
	}
	m.observeOwn(now, r)
	return Action{Kind: Publish, Report: r}
}

func (m *Machine) load(act Action) []Action {
	m.phase = Loading
	return []Action{act}
}

// fail ends an epoch whose averaging failed: alone, the peer applies its
// own update; otherwise it restores the epoch's start state and decides
// again (it takes the successor if others averaged, or trains the epoch
// again).
func (m *Machine) fail(now time.Duration, why string) []Action {
	if m.alone(now) {
		m.phase = Applying
		return []Action{{Kind: ApplyAlone, Epoch: m.epoch, Reason: why}}
	}
	if m.stage == 1 && m.lastHeard < 0 && m.cfg.Role != matchmaking.Aux && m.weight > 0 {
		// Nobody has been heard since the peer started: training the
		// epoch again would only fail the same way, again and again, until
		// the peer may apply its update alone. It holds the update until
		// then, or until someone appears.
		m.phase, m.until = Holding, m.started+m.cfg.Expiry
		return nil
	}
	// The announcements heard so far were for the window that failed: a
	// peer that trains the epoch again trains it whole, until someone
	// announces anew (it stopped after one step, which made the retried
	// epoch's average a sliver of the work).
	m.inbox.ready[m.epoch] = false
	return append([]Action{{Kind: Restore, Epoch: m.epoch, Reason: why}}, m.decide(now)...)
}

// checkHold ends a hold: once another peer is heard, the peer loads the
// swarm's state if the rules say so or looks for a group with its held
// update; at the end of the expiry with nobody heard, it applies the
// update alone.
func (m *Machine) checkHold(now time.Duration) []Action {
	switch {
	case m.lastHeard >= 0:
		if act, ok := m.target(now); ok {
			return append([]Action{{Kind: Restore, Epoch: m.epoch, Reason: "the swarm's state is ahead of the held update"}}, m.load(act)...)
		}
		return m.startMatch(now, 1, m.weight)
	case now >= m.until:
		return m.fail(now, "no other peer heard")
	}
	return nil
}

// alone reports whether this peer may apply an update by itself: it
// contributes, and no other peer has been heard for a whole report expiry
// since it started (so a restarted miner that has not heard its swarm yet
// does not fork off it).
func (m *Machine) alone(now time.Duration) bool {
	if m.cfg.Role == matchmaking.Aux || m.weight <= 0 {
		return false
	}
	// Reports live for Expiry after they were sent, so with none heard
	// for that long no other peer is live.
	heard := m.lastHeard >= 0 && now-m.lastHeard < m.cfg.Expiry
	return !heard && now-m.started >= m.cfg.Expiry
}

// noteAhead records a report of a later epoch and says whether it is
// worth a decision: a state of the next epoch now held by two, or any
// report further ahead.
func (m *Machine) noteAhead(r progress.Report) bool {
	switch {
	case r.Epoch > m.epoch+1:
		return true
	case r.Epoch <= m.epoch || !r.Offers:
		return false
	}
	if m.ahead == nil {
		m.ahead = map[[32]byte]map[string]bool{}
	}
	if m.ahead[r.StateHash] == nil {
		m.ahead[r.StateHash] = map[string]bool{}
	}
	holders := m.ahead[r.StateHash]
	if holders[r.Peer] {
		return false
	}
	holders[r.Peer] = true
	return len(holders) >= 2
}

// checkAwait ends a member's wait for its delegates: it loads their state
// once it appears, or decides afresh at the deadline.
func (m *Machine) checkAwait(now time.Duration) []Action {
	if act, ok := m.target(now); ok {
		return m.load(act)
	}
	if now >= m.until {
		return m.decide(now)
	}
	return nil
}

// SetContribution sets this peer's committed update for its epoch
// (allreduce.Commit): its stage-1 announcements carry the contribution's
// root in the scope of their matchmaking, so every owner of the round and
// any auditor checks its parts against it. It holds until the peer's
// state changes; nil commits to nothing.
func (m *Machine) SetContribution(c *allreduce.Contribution) { m.contribution = c }

// SetGroupContribution sets the committed mean of this peer's group, for
// the delegates' round it may lead: its stage-2 announcement carries the
// root, so the delegates' owners check its parts and the other delegates
// check their owners, as in stage 1. It holds until the peer's state
// changes; nil commits to nothing.
func (m *Machine) SetGroupContribution(c *allreduce.Contribution) { m.groupContribution = c }
