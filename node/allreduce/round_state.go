package allreduce

import (
	"fmt"
	"time"
)

// Round is one butterfly all-reduce as seen by one member: a state machine
// that never does I/O. The caller calls Start once, feeds it every message
// from a group member (Receive) and the clock (Tick), sends what they
// return, and reads Result once Done.
//
// The round runs in three steps. Reduce-scatter: every contributor sends its
// values of span j to j's owner, part by part. Agreement: each owner, once it
// has every contributor's parts or stops waiting (PartTimeout,
// ReduceTimeout), sends every member a ReportMsg listing the contributors it
// fully received; the round's contributors are the intersection of all
// owners' reports, so a contributor missing at any owner is excluded from
// every span. All-gather: each owner averages its span over exactly those
// contributors and sends the parts to every member; it starts before the
// agreement, part by part, betting that nobody fails (round_gather.go), and
// redoes only what the agreement proves wrong. A member whose spans are
// not all reported and gathered by RoundTimeout fails with ErrSpanLost.
// An owner that fails is replaced (round_lost.go): its span is re-reduced
// by the next live reducer, so the round still ends with the exact mean of
// the contributors every span's final report lists.
type Round struct {
	cfg     RoundConfig
	agg     aggregator // the owner's rule and its scratch space
	mean    []float32  // gatherPart's average of one part, reused: encoding copies it
	spanOf  []int      // member index → index of the span it owns, or -1
	mySpan  int        // -1 unless self owns a non-empty span
	parts   []int      // parts per span
	started bool
	start   time.Duration

	// Ownership, per span (round_lost.go): the current owner, since when
	// this member believes so, and the members believed lost.
	ownerOf    []int
	ownerSince []time.Duration
	lost       []bool
	own        []*spanOwner // the spans this member reduces, nil elsewhere

	// Agreement state, per span.
	reports      [][]int
	haveReport   []bool
	reportFrom   []int   // the owner whose report is held
	lostReport   [][]int // a lost owner's report, for its replacement
	contributors []int   // set once every non-empty span has reported
	agreed       bool
	agreedHash   uint64
	agreedAt     time.Duration

	// All-gather state, per span (round_gather.go). fullSet is every
	// contributing member, the set parts are averaged over before agreement.
	fullSet    []int
	fullHash   uint64
	result     []float32
	held       [][]uint64 // [span][part] the set of the part in result, 0 if none
	heldFrom   [][]int    // [span][part] the member that sent it
	gatherGot  []int      // parts held over the gather set, per span
	lastGather []time.Duration
	early      map[earlyPart]PartMsg

	encoded [][][]byte // [span][part] contributions sent through Feedback
	faults  []Fault    // contributors this member proved wrong as an owner

	done bool
	err  error
}

// NewRound checks cfg and returns a round ready to Start.
func NewRound(cfg RoundConfig) (*Round, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("allreduce round: %w", err)
	}
	g := cfg.Group.Members
	r := &Round{cfg: cfg, mySpan: -1, agg: aggregator{rule: cfg.Aggregation}}
	r.spanOf = make([]int, len(g))
	for i := range r.spanOf {
		r.spanOf[i] = -1
	}
	r.parts = make([]int, len(cfg.Spans))
	for k, s := range cfg.Spans {
		r.spanOf[s.Peer] = k
		r.parts[k] = (s.Len() + cfg.PartSize - 1) / cfg.PartSize
		if s.Peer == cfg.Self && s.Len() > 0 {
			r.mySpan = k
		}
	}
	ns := len(cfg.Spans)
	r.ownerOf, r.ownerSince, r.lost = make([]int, ns), make([]time.Duration, ns), make([]bool, len(g))
	r.own = make([]*spanOwner, ns)
	r.reports, r.haveReport, r.reportFrom, r.lostReport = make([][]int, ns), make([]bool, ns), make([]int, ns), make([][]int, ns)
	r.held, r.heldFrom, r.gatherGot, r.lastGather = make([][]uint64, ns), make([][]int, ns), make([]int, ns), make([]time.Duration, ns)
	for k, s := range cfg.Spans {
		r.ownerOf[k], r.reportFrom[k] = s.Peer, -1
		r.held[k], r.heldFrom[k] = make([]uint64, r.parts[k]), make([]int, r.parts[k])
	}
	for i, m := range g {
		if m.Role.contributes() {
			r.fullSet = append(r.fullSet, i)
		}
	}
	r.fullHash = SetHash(r.fullSet)
	if g[cfg.Self].Role.contributes() {
		r.result = make([]float32, cfg.Len)
	}
	return r, nil
}

// Done reports whether the round has ended, with a result or a failure.
func (r *Round) Done() bool { return r.done }

// Config is the configuration the round was made with; its slices are the
// round's own, not to be changed.
func (r *Round) Config() RoundConfig { return r.cfg }

// Result returns the round's result once it is done: the mean and its
// contributors, or the error the round failed with.
func (r *Round) Result() (Result, error) {
	if !r.done {
		return Result{}, ErrRoundNotDone
	}
	if r.err != nil {
		return Result{}, r.err
	}
	c := append([]int(nil), r.contributors...)
	return Result{Vector: r.result, Contributors: c}, nil
}

// Start begins the round at now and returns the reduce-scatter parts to
// send. Calling it again returns nothing.
func (r *Round) Start(now time.Duration) []Outgoing {
	if r.started {
		return nil
	}
	r.started, r.start = true, now
	if r.mySpan >= 0 {
		r.startOwner(now, r.mySpan, now+r.cfg.reduceBy())
	}
	out := r.sendContribution()
	out = append(out, r.maybeReport(now)...)
	out = append(out, r.maybeAgree(now)...)
	r.checkDone()
	return out
}

// sendContribution encodes this member's values of every other owner's
// span, interleaving the owners part by part so that every owner's reduction
// starts early and progresses evenly.
func (r *Round) sendContribution() []Outgoing {
	if !r.cfg.Group.Members[r.cfg.Self].Role.contributes() {
		return nil
	}
	var out []Outgoing
	for p := 0; ; p++ {
		more := false
		for k, s := range r.cfg.Spans {
			if p >= r.parts[k] {
				continue
			}
			more = true
			if s.Peer == r.cfg.Self {
				continue
			}
			out = append(out, Outgoing{To: s.Peer, Msg: r.contributionMsg(k, p)})
		}
		if !more {
			return out
		}
	}
}

// contribution is this member's encoded values of part p of span k. With
// error feedback the first encoding is kept and sent again on a resend.
func (r *Round) contribution(k, p int) []byte {
	lo, hi := r.partRange(k, p)
	if r.cfg.Feedback == nil {
		return encodeShared(r.cfg.Codec, r.cfg.Vector[lo:hi])
	}
	if r.encoded == nil {
		r.encoded = make([][][]byte, len(r.cfg.Spans))
	}
	if r.encoded[k] == nil {
		r.encoded[k] = make([][]byte, r.parts[k])
	}
	if b := r.encoded[k][p]; b != nil {
		return b
	}
	b, err := r.cfg.Feedback.Encode(nil, lo, r.cfg.Vector[lo:hi])
	if err != nil {
		// The residual pushed a value past float32's range; Encode reset
		// the part's residual, so send the plain values this once.
		b = r.cfg.Codec.Encode(nil, r.cfg.Vector[lo:hi])
	}
	r.encoded[k][p] = b
	return b
}

// partRange is the element range [lo, hi) of part p of span k.
func (r *Round) partRange(k, p int) (lo, hi int) {
	s := r.cfg.Spans[k]
	lo = s.Begin + p*r.cfg.PartSize
	return lo, min(lo+r.cfg.PartSize, s.End)
}

// Receive handles a message from member from and returns what to send. An
// error means the message was rejected (bad, unexpected, late or
// duplicate); the round's state is then unchanged, and the caller may log
// the reason and carry on. The exception is a part of a committed round
// that fails its commitment (the error wraps ErrCommitMismatch or
// ErrBadEncoding, and Faults records it): it excludes its sender, and the
// messages returned must be sent. A member that ended with a result keeps
// serving re-reductions (LostMsg and the contributions a replacement owner
// needs), so callers should keep feeding it messages until RoundTimeout.
// Receive keeps no reference to msg's payload once it returns: the caller
// may reuse that buffer.
func (r *Round) Receive(now time.Duration, from int, msg Msg) ([]Outgoing, error) {
	if from < 0 || from >= len(r.cfg.Group.Members) || from == r.cfg.Self {
		return nil, fmt.Errorf("%w: from %d, not another member of a group of %d",
			ErrBadMessage, from, len(r.cfg.Group.Members))
	}
	if !r.started || (r.done && !r.serves(msg)) {
		return nil, fmt.Errorf("%w: from %d: round not running", ErrBadMessage, from)
	}
	var err error
	var out []Outgoing
	switch m := msg.(type) {
	case PartMsg:
		if m.Phase == ReduceScatter {
			out, err = r.receiveContribution(now, from, m)
			out = append(out, r.maybeReport(now)...)
		} else if m.Phase == AllGather {
			out, err = r.receiveGathered(now, from, m)
		} else {
			err = fmt.Errorf("unknown %v", m.Phase)
		}
	case ReportMsg:
		out, err = r.receiveReport(now, from, m)
	case LostMsg:
		out, err = r.receiveLost(now, m)
	default:
		err = fmt.Errorf("unexpected message %T", msg)
	}
	if err != nil {
		return out, fmt.Errorf("%w: from member %d: %w", ErrBadMessage, from, err)
	}
	out = append(out, r.maybeAgree(now)...)
	r.checkDone()
	return out, nil
}

// Tick advances the clock: an owner stops waiting for stalled contributors
// and reports, and past RoundTimeout an unfinished round fails.
func (r *Round) Tick(now time.Duration) []Outgoing {
	if !r.started || r.done {
		return nil
	}
	out := r.detectLost(now)
	out = append(out, r.maybeReport(now)...)
	out = append(out, r.maybeAgree(now)...)
	r.checkDone()
	if !r.done && now-r.start >= r.cfg.RoundTimeout {
		r.done, r.err = true, r.lostSpans()
	}
	return out
}

// lostSpans names the spans that kept the round from finishing.
func (r *Round) lostSpans() error {
	var lost []string
	for k, s := range r.cfg.Spans {
		id := r.cfg.Group.Members[s.Peer].ID
		if o := r.ownerOf[k]; o >= 0 && o != s.Peer {
			id += " (replaced by " + r.cfg.Group.Members[o].ID + ")"
		}
		switch {
		case r.parts[k] == 0:
		case r.ownerOf[k] < 0:
			lost = append(lost, fmt.Sprintf("span %d of %s: every reducer lost", k, id))
		case !r.haveReport[k]:
			lost = append(lost, fmt.Sprintf("span %d of %s: no report", k, id))
		case r.result != nil && r.gatherGot[k] < r.parts[k]:
			lost = append(lost, fmt.Sprintf("span %d of %s: %d of %d parts gathered", k, id, r.gatherGot[k], r.parts[k]))
		}
	}
	return fmt.Errorf("%w by the round deadline: %v", ErrSpanLost, lost)
}

// checkDone ends the round once the contributors are agreed and every span
// is gathered (an aux member takes no result, so agreement is enough: it
// sent its own span when it agreed).
func (r *Round) checkDone() {
	if r.done || !r.agreed {
		return
	}
	if r.result != nil {
		for k := range r.cfg.Spans {
			if r.gatherGot[k] < r.parts[k] {
				return
			}
		}
	}
	r.done = true
}

// serves reports whether a member that ended with a result still handles
// msg: it helps re-reduce a lost owner's span for those still waiting.
func (r *Round) serves(msg Msg) bool {
	if r.err != nil || !r.agreed {
		return false
	}
	switch m := msg.(type) {
	case LostMsg:
		return true
	case PartMsg:
		return m.Phase == ReduceScatter
	}
	return false
}
