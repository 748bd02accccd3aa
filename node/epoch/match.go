package epoch

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
)

// Bounds on buffered matchmaking messages: epochs ahead of this peer's
// (peers that finish an epoch sooner announce before this one is ready),
// messages per matchmaking, messages per sender in one matchmaking (a
// sender's announcement and one view per confirmation round, with room for
// gossip echoes), and per sender in all (its two stages' matchmakings in
// each buffered epoch), so that no sender can fill the buffer for the
// others, with many matchmaking keys either.
const (
	inboxEpochs         = 4
	inboxCap            = 4096
	inboxPerSender      = 16
	inboxPerSenderTotal = 2 * inboxEpochs * inboxPerSender
)

type inboxKey struct {
	key   string
	epoch uint64
}

// inboxEntry is a buffered message, without what its bucket's key says
// (Key, Epoch) and with its To, this peer or nobody, as a flag: the
// thousand announcements a peer buffers every epoch take 64 bytes each.
type inboxEntry struct {
	from   string
	ready  *matchmaking.Ready
	msg    matchmaking.Msg
	direct bool // To is this peer
}

// match returns e as the message it buffered for (k, self).
func (e *inboxEntry) match(k inboxKey, self string) Match {
	m := Match{Key: k.key, Epoch: k.epoch, Ready: e.ready, Msg: e.msg}
	if e.direct {
		m.To = self
	}
	return m
}

// inbox holds matchmaking messages for matchmakings this peer has not
// started yet.
type inbox struct {
	byKey map[inboxKey]*inboxBucket
	ready map[uint64]bool // another peer announced for this peer's stage-1 key and epoch
	total int
	held  map[string]int // messages buffered per sender, across matchmakings
}

// inboxBucket is what the inbox holds for one matchmaking: its messages,
// and how many each sender has put there since it was opened.
type inboxBucket struct {
	entries []inboxEntry
	senders map[string]int
}

func (b *inbox) init() {
	b.byKey, b.ready, b.held = map[inboxKey]*inboxBucket{}, map[uint64]bool{}, map[string]int{}
}

// put buffers a message for a matchmaking of epoch in [from, from+inboxEpochs).
func (b *inbox) put(from string, msg Match, current uint64) {
	if msg.Epoch < current || msg.Epoch >= current+inboxEpochs || b.total >= inboxEpochs*inboxCap {
		return
	}
	k := inboxKey{msg.Key, msg.Epoch}
	bk := b.byKey[k]
	if bk == nil {
		bk = &inboxBucket{senders: map[string]int{}}
		b.byKey[k] = bk
	}
	n := bk.senders[from]
	if len(bk.entries) >= inboxCap || n >= inboxPerSender || b.held[from] >= inboxPerSenderTotal {
		if len(bk.entries) == 0 && len(bk.senders) == 0 {
			delete(b.byKey, k) // opened for nothing: a refused sender opens no buckets
		}
		return
	}
	b.total++
	b.held[from]++
	bk.senders[from] = n + 1
	bk.entries = append(bk.entries, inboxEntry{from: from, ready: msg.Ready, msg: msg.Msg, direct: msg.To != ""})
}

// take returns and forgets the messages for (key, epoch), and drops
// everything for epochs before epoch.
func (b *inbox) take(key string, epoch uint64) []inboxEntry {
	for k, bk := range b.byKey {
		if k.epoch < epoch {
			b.release(bk.entries)
			delete(b.byKey, k)
		}
	}
	for e := range b.ready {
		if e < epoch {
			delete(b.ready, e)
		}
	}
	bk := b.byKey[inboxKey{key, epoch}]
	if bk == nil {
		return nil
	}
	out := bk.entries
	b.release(out)
	bk.entries = nil
	return out
}

// release forgets that es are held.
func (b *inbox) release(es []inboxEntry) {
	b.total -= len(es)
	for _, e := range es {
		if b.held[e.from]--; b.held[e.from] <= 0 {
			delete(b.held, e.from)
		}
	}
}

// announced reports whether a buffered message from a contributor other
// than self announces it is ready for a matchmaking of epoch whose key
// starts with prefix (an aux validator announces with nothing trained).
func (b *inbox) announced(epoch uint64, prefix, self string) bool {
	for k, bk := range b.byKey {
		if k.epoch != epoch || !strings.HasPrefix(k.key, prefix) {
			continue
		}
		for _, e := range bk.entries {
			if e.from != self && e.ready != nil && e.ready.Role != matchmaking.Aux {
				return true
			}
		}
	}
	return false
}

// openWindow returns the earliest window of epoch under prefix that a peer
// other than self announced for and that closes at or after from (window
// w closes at w·T).
func (b *inbox) openWindow(prefix string, epoch uint64, self string, from, T time.Duration) (time.Duration, bool) {
	var best time.Duration
	found := false
	for k, bk := range b.byKey {
		if k.epoch != epoch || !strings.HasPrefix(k.key, prefix) {
			continue
		}
		w, err := strconv.ParseInt(k.key[len(prefix):], 10, 64)
		if err != nil || w <= 0 || time.Duration(w) > math.MaxInt64/T || time.Duration(w)*T < from || (found && time.Duration(w) >= best) {
			continue
		}
		if slices.ContainsFunc(bk.entries, func(e inboxEntry) bool { return e.from != self && e.ready != nil }) {
			best, found = time.Duration(w), true
		}
	}
	return best, found
}

// prefix names the matchmakings of a stage: the run, the stage and the
// state its members start from, so that only peers on one state average
// together, and a slash. A matchmaking's key adds its window (window).
func (m *Machine) prefix(stage int) string {
	if m.keys[0] == "" {
		for i := range m.keys {
			m.keys[i] = fmt.Sprintf("%s/%d/%x/", m.cfg.Run, i+1, m.hash[:8])
		}
	}
	return m.keys[stage-1]
}

// stageOf is the stage of a matchmaking key of this run, whatever its
// state (prefix's format): 2 for a delegates' round, 1 otherwise.
func (m *Machine) stageOf(key string) int {
	if strings.HasPrefix(key, m.cfg.Run+"/2/") {
		return 2
	}
	return 1
}

// window returns when collecting ends for a matchmaking started at now
// with the given collect time T, and its key. Deadlines fall on a grid of
// T on the shared clock (the one reports are dated by, synchronized
// within the report expiry): the first grid point at least T/2 away. The
// peers of an epoch that announce within one window close at the same
// instant and, with gossip faster than T/2, see the same ready set; a
// peer that misses a window meets in the next one only those that missed
// it too, under another key, never a group that has moved on.
//
// A peer joins instead an earlier window that another peer has announced
// for while its deadline is still at least T/4 away: a peer that finished
// its epoch a little later than the others (it loaded the state late, or
// trains slower) meets them rather than wait alone for the next window.
func (m *Machine) window(now time.Duration, stage int, T time.Duration) (time.Duration, string) {
	deadline := (now + T/2 + T - 1) / T * T
	if w, ok := m.inbox.openWindow(m.prefix(stage), m.epoch, m.cfg.Self, now+T/4, T); ok && w*T < deadline {
		deadline = w * T
	}
	return deadline, m.prefix(stage) + strconv.FormatInt(int64(deadline/T), 10)
}

// earlierWindow reports whether msg announces another contributor ready
// for this peer's matchmaking in an earlier window that still closes at
// least T/4 from now, while this peer's window is still collecting. Peers
// that finish within milliseconds of each other on either side of a grid
// point's T/2 mark pick different windows before either hears the other;
// the later one moves down to the earlier window (and so do those that
// joined it, on the same announcement), so they meet in one group rather
// than each wait out its window and drop. Moves go only to earlier
// windows, so they end.
func (m *Machine) earlierWindow(now time.Duration, from string, msg Match) bool {
	if (m.phase != Matching && m.phase != Delegating) || msg.Ready == nil || msg.Ready.Role == matchmaking.Aux || m.overweightReady(msg.Ready) ||
		from == m.cfg.Self || msg.Epoch != m.epoch || m.mm == nil || !m.mm.Collecting() {
		return false
	}
	prefix := m.prefix(m.stage)
	if !strings.HasPrefix(msg.Key, prefix) || !strings.HasPrefix(m.mmKey, prefix) {
		return false
	}
	w, err := strconv.ParseInt(msg.Key[len(prefix):], 10, 64)
	cur, err2 := strconv.ParseInt(m.mmKey[len(prefix):], 10, 64)
	if err != nil || err2 != nil || w <= 0 || w >= cur {
		return false
	}
	T := m.cfg.MatchTimeout
	if m.stage == 2 {
		T = m.cfg.DelegateTimeout
	}
	return time.Duration(w) <= math.MaxInt64/T && time.Duration(w)*T >= now+T/4
}

// OthersReady reports whether another contributor has announced that it
// is ready to average this peer's epoch from the same state: a peer still
// training may stop early and contribute what it has, weighted by its
// samples. An aux announcement does not count: a validator announces
// with nothing trained.
func (m *Machine) OthersReady() bool { return m.inbox.ready[m.epoch] }

// ReceiveMatch takes a matchmaking message from peer from (the transport
// authenticates from). A message for a later matchmaking is buffered; a
// refused one comes back as the error and changes nothing.
func (m *Machine) ReceiveMatch(now time.Duration, from string, msg Match) ([]Action, error) {
	if msg.Ready != nil && (msg.Ready.Peer != from || msg.Ready.Epoch != msg.Epoch || msg.Ready.Run != msg.Key) {
		return nil, fmt.Errorf("epoch: match message from %s announces %q for %q epoch %d: %w",
			from, msg.Ready.Peer, msg.Ready.Run, msg.Ready.Epoch, matchmaking.ErrBadMessage)
	}
	if msg.To != "" && msg.To != m.cfg.Self {
		return nil, nil
	}
	if msg.Ready != nil && msg.Ready.Role != matchmaking.Aux && !m.overweightReady(msg.Ready) && from != m.cfg.Self && msg.Epoch == m.epoch && strings.HasPrefix(msg.Key, m.prefix(1)) {
		m.inbox.ready[m.epoch] = true
		if len(m.announcers) < maxAnnouncers {
			m.announcers[from] = true
		}
	}
	pre := m.noteOverweight(now, msg)
	active := (m.phase == Matching || m.phase == Delegating) && msg.Key == m.mmKey && msg.Epoch == m.epoch
	if !active && m.earlierWindow(now, from, msg) {
		m.inbox.put(from, msg, m.epoch)
		return append(pre, m.startMatch(now, m.stage, m.ready.Weight)...), nil
	}
	if !active {
		m.inbox.put(from, msg, m.epoch)
		return append(pre, m.matchDone(now)...), nil
	}
	out, err := m.feed(now, from, msg)
	return append(append(pre, out...), m.matchDone(now)...), err
}

// feed hands one message to the running matchmaker: the sender's repeated
// announcement first (an echo of one held is ignored), then the message.
func (m *Machine) feed(now time.Duration, from string, msg Match) ([]Action, error) {
	var out []Action
	if !m.mm.Collecting() && msg.Msg.View == nil {
		return nil, nil // an announcement too late for this matchmaking
	}
	if msg.Ready != nil && msg.Msg.View != nil && m.mm.Collecting() {
		o, _ := m.mm.Receive(now, from, matchmaking.Msg{Ready: []matchmaking.Ready{*msg.Ready}})
		out = m.matchOut(now, o)
	}
	o, err := m.mm.Receive(now, from, msg.Msg)
	return append(out, m.matchOut(now, o)...), err
}

// noteOverweight takes note of a sender's own announcement (msg.Ready,
// authenticated by ReceiveMatch) that claims more samples than an epoch
// holds, in whatever window: matchmaking refuses it, and the sender is not
// waited for, now or for the next overweightEpochs epochs.
func (m *Machine) noteOverweight(now time.Duration, msg Match) []Action {
	r := msg.Ready
	if r == nil || !m.overweightReady(r) || msg.Epoch != m.epoch {
		return nil
	}
	if _, ok := m.tracker.Report(now, r.Peer); !ok {
		// Only peers that report are remembered, so the map is bounded by
		// the tracker: ids cost nothing.
		return nil
	}
	if m.overweight == nil {
		m.overweight = map[string]uint64{}
	}
	m.overweight[r.Peer] = m.epoch
	if m.unexpected[r.Peer] || m.phase != Matching || m.stage != 1 || m.mm == nil || !m.mm.Collecting() || !m.counted(now, r.Peer) {
		return nil
	}
	m.unexpected[r.Peer] = true
	return m.matchOut(now, m.mm.Unexpect(now))
}

// overweightReady reports whether r claims more samples than an epoch
// holds: such an announcement neither makes a peer stop training early
// nor moves it to another window.
func (m *Machine) overweightReady(r *matchmaking.Ready) bool {
	limit := m.maxWeight(m.stageOf(r.Run))
	return limit > 0 && r.Role != matchmaking.Aux && r.Weight > limit
}

// maxWeight is the most weight a contributor may announce in a
// matchmaking of the given stage (0: unbounded): an epoch's samples, and
// in the delegates' round, where a delegate announces its group's,
// MaxGroup times that.
func (m *Machine) maxWeight(stage int) float64 {
	if stage == 2 {
		return m.cfg.MaxWeight * float64(m.cfg.MaxGroup)
	}
	return m.cfg.MaxWeight
}

// maxAnnouncers bounds the announcers of an epoch a Machine remembers
// (ReceiveMatch): ids cost nothing.
const maxAnnouncers = 1 << 16

// overweightEpochs is how long a peer's over-weight announcement keeps it
// out of the peers expected.
const overweightEpochs = 2

// counted reports whether expected counted peer p: it reports this
// peer's epoch from the same state and offers it.
func (m *Machine) counted(now time.Duration, p string) bool {
	r, ok := m.tracker.Report(now, p)
	return ok && p != m.cfg.Self && r.Offers && r.Epoch == m.epoch && r.StateHash == m.hash && !m.validator(p)
}

// startMatch starts the matchmaking of the given stage with this peer's
// weight: stage 1 among the peers ready for the epoch, stage 2 among the
// delegates of the epoch's groups.
func (m *Machine) startMatch(now time.Duration, stage int, weight float64) []Action {
	timeout := m.cfg.MatchTimeout
	if stage == 2 {
		timeout = m.cfg.DelegateTimeout
	}
	deadline, key := m.window(now, stage, timeout)
	m.stage, m.mmKey = stage, key
	// Who this matchmaking does not count on is worked out anew.
	for p, e := range m.overweight {
		if e+overweightEpochs < m.epoch {
			delete(m.overweight, p)
		}
	}
	if m.unexpected == nil {
		m.unexpected = map[string]bool{}
	}
	clear(m.unexpected)
	cfg := matchmaking.Config{
		Run: m.mmKey, Self: m.cfg.Self, Epoch: m.epoch, ConfirmTimeout: m.cfg.ConfirmTimeout,
		MinGroup: m.cfg.MinGroup, MaxGroup: m.cfg.MaxGroup,
		Deadline: deadline, Expected: m.expected(now), Validators: m.trusted, MaxWeight: m.maxWeight(stage),
	}
	if m.cfg.Excluded != nil || len(m.distrusted) > 0 {
		epoch := m.epoch
		cfg.Excluded = func(p string) bool {
			return (m.cfg.Excluded != nil && m.cfg.Excluded(p, epoch)) || m.distrusts(p)
		}
	}
	m.phase = Matching
	if stage == 1 {
		// The quorum counts reporting peers only; unreported neighbours
		// only keep the collection open for them.
		m.expect = cfg.Expected
		cfg.Expected += m.unreported(now)
		cfg.ExpectedAux = m.expectedAux(now)
	}
	if stage == 2 {
		// One group of every delegate: the bound only keeps a wrong
		// estimate from splitting them.
		cfg.MinGroup, cfg.MaxGroup = 2, max(m.cfg.MaxGroup, 4*m.groups)
		cfg.Expected = m.groups
		m.phase = Delegating
	}
	if m.cfg.Role == matchmaking.Aux {
		weight = 0
	}
	// The matchmaker of the epoch before is done with: its memory is
	// reused.
	var err error
	if m.mm == nil {
		m.mm, err = matchmaking.New(cfg)
	} else {
		err = m.mm.Reset(cfg)
	}
	if err != nil {
		return m.fail(now, err.Error())
	}
	m.ready = &matchmaking.Ready{Run: m.mmKey, Epoch: m.epoch, Peer: m.cfg.Self, Role: m.cfg.Role, Weight: weight, Bandwidth: m.bandwidth}
	c := m.contribution
	if stage == 2 {
		c = m.groupContribution
	}
	if m.cfg.Role != matchmaking.Aux && c != nil {
		m.ready.Commit = c.Root(allreduce.CommitScope{Run: m.mmKey, Epoch: m.epoch, Member: m.cfg.Self})
	}
	o, err := m.mm.Announce(now, *m.ready)
	if err != nil {
		return m.fail(now, err.Error())
	}
	out := m.matchOut(now, o)
	for _, in := range m.inbox.take(m.mmKey, m.epoch) {
		more, _ := m.feed(now, in.from, in.match(inboxKey{m.mmKey, m.epoch}, m.cfg.Self))
		out = append(out, more...)
	}
	return append(out, m.matchDone(now)...)
}

// matchOut wraps matchmaking's messages as actions.
func (m *Machine) matchOut(now time.Duration, out []matchmaking.Outgoing) []Action {
	acts := make([]Action, 0, len(out))
	for _, o := range out {
		acts = append(acts, Action{Kind: PublishMatch, Epoch: m.epoch,
			Match: Match{To: o.To, Key: m.mmKey, Epoch: m.epoch, Ready: m.ready, Msg: o.Msg}})
	}
	return acts
}

// matchDone moves on once matchmaking has ended: to the round, or to fail.
func (m *Machine) matchDone(now time.Duration) []Action {
	if (m.phase != Matching && m.phase != Delegating) || !m.mm.Done() {
		return nil
	}
	g, err := m.mm.Group()
	if m.stage == 1 {
		m.groups = matchmaking.Groups(m.mm.Announced(), m.cfg.MinGroup, m.cfg.MaxGroup)
	}
	if err == nil && contributors(g) < 2 {
		// An aux member adds nothing to average: a contributor grouped
		// only with validators has no round worth running.
		err = fmt.Errorf("a group of %d with %d contributors", len(g.Members), contributors(g))
	}
	if err != nil {
		return m.fail(now, fmt.Sprintf("matchmaking (stage %d): %v", m.stage, err))
	}
	m.phase, m.group = Averaging, g
	return []Action{{Kind: Average, Epoch: m.epoch, Stage: m.stage, Group: g, Weight: m.ready.Weight}}
}

// contributors counts g's members that contribute a vector.
func contributors(g matchmaking.Group) int {
	n := 0
	for _, mb := range g.Members {
		if mb.Role != matchmaking.Aux {
			n++
		}
	}
	return n
}
