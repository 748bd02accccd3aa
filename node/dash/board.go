// Package dash is a run's dashboard: a Board that folds a role's events
// (the records of its metrics.jsonl, live or read back after a restart)
// into what a page shows, and the HTTP handler that serves that page, its
// parts and a JSON API, with every asset embedded and nothing from a CDN.
//
// Routes (Handler):
//
//	GET /               the page: summary, loss chart (SVG drawn here), miners, rounds, events
//	GET /parts          the page's sections as JSON {"summary": html, …}, which its script swaps in
//	GET /api/run        Summary
//	GET /api/epochs     []Point: one per epoch the role closed, in order
//	GET /api/miners     []MinerRow, by peer id
//	GET /api/rounds     []RoundRow, the last 50, newest first
//	GET /api/events     []Note, the last 200, newest first
//	GET /api/status     Status: an operator's view of this peer (dtrain status)
//	GET /api/stream     server-sent events: "update" with the board's version after every change
//	GET /assets/…       the page's CSS and script
package dash

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Bounds of what a Board keeps.
const (
	maxPoints = 100_000
	maxMiners = 4096
	maxRounds = 50
	maxNotes  = 200
)

// Summary is the run as a whole.
type Summary struct {
	Role       string    `json:"role"` // validator, miner or train
	Run        string    `json:"run"`
	Peer       string    `json:"peer,omitempty"`
	Params     int64     `json:"params"`
	Started    time.Time `json:"started"`
	Epoch      uint64    `json:"epoch"` // the last closed epoch
	Tokens     int64     `json:"tokens"`
	TokensPerS float64   `json:"tokens_per_s"` // over the last epochs
	Live       int       `json:"live_miners"`
	Miners     int       `json:"miners"`
	Validators int       `json:"validators"` // live, as the last epoch reported them (0: unknown)
	Caught     int       `json:"caught"`     // cheat verdicts
	Updated    time.Time `json:"updated"`
}

// Point is one closed epoch: what its loss curve plots.
type Point struct {
	Epoch   uint64    `json:"epoch"`
	Time    time.Time `json:"time"`
	Tokens  int64     `json:"tokens"`             // trained by the run through this epoch, as far as the role knows
	Loss    *float64  `json:"loss,omitempty"`     // training loss: the miners' mean reported one
	ValLoss *float64  `json:"val_loss,omitempty"` // held-out loss, when evaluated
}

// MinerRow is what the role knows of one miner.
type MinerRow struct {
	Peer      string    `json:"peer"`
	Epoch     uint64    `json:"epoch"` // its last reported epoch
	Seen      time.Time `json:"seen"`  // its last report
	Loss      *float64  `json:"loss,omitempty"`
	UpMbps    *float64  `json:"up_mbps,omitempty"`
	DownMbps  *float64  `json:"down_mbps,omitempty"`
	RTTms     *float64  `json:"rtt_ms,omitempty"`
	Joined    int       `json:"rounds_joined"`
	Failed    int       `json:"rounds_failed"`
	Weight    float64   `json:"weight"`
	Score     float64   `json:"score"`
	Active    bool      `json:"active"`
	Gate      float64   `json:"gate"`
	Work      float64   `json:"work"`
	Delivery  *float64  `json:"delivery,omitempty"`
	Network   float64   `json:"network"`
	Verdict   string    `json:"verdict,omitempty"` // the last: pass, inconclusive or cheat
	VerdictAt uint64    `json:"verdict_epoch,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Stale     bool      `json:"stale"` // not heard for longer than the board's staleness bound
}

// RoundRow is one all-reduce round.
type RoundRow struct {
	Time         time.Time `json:"time"`
	Epoch        uint64    `json:"epoch"`
	Members      int       `json:"members"`
	Contributors int       `json:"contributors"`
	TookS        float64   `json:"took_s"`
	Bytes        int64     `json:"bytes"`
	Err          string    `json:"error,omitempty"`
}

// Note is one event worth a line: a start, a stop, a state load, a cheat
// caught, a failed probe.
type Note struct {
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	Text string    `json:"text"`
}

// Board folds a role's events into its dashboard. Its methods are safe
// for concurrent use.
type Board struct {
	mu      sync.Mutex
	sum     Summary
	seqLen  int64 // tokens per sample; 0 = unknown
	samples int64 // the validator's sum of the epochs' samples
	points  []Point
	val     map[uint64]float64 // held-out losses of epochs not closed yet
	miners  map[string]*MinerRow
	rounds  []RoundRow // oldest first
	notes   []Note     // oldest first
	version uint64
	changed chan struct{} // closed and replaced at every change
	now     func() time.Time
	at      time.Time // the time of the record being applied
	live    func() Live
	// up and down are a miner's own link as its last epoch announced it.
	up, down *float64
	created  time.Time // when this process made the board
}

// NewBoard returns an empty board of a role.
func NewBoard(role string) *Board {
	return &Board{sum: Summary{Role: role}, miners: map[string]*MinerRow{}, changed: make(chan struct{}), now: time.Now, created: time.Now()}
}

// Changed returns the board's version and a channel closed at its next
// change.
func (b *Board) Changed() (uint64, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.version, b.changed
}

// SetInfo sets what the role knows besides its events: its run, peer id,
// model size and tokens per sample; an empty or zero value leaves what
// the board has.
func (b *Board) SetInfo(run, peer string, params, seqLen int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sum.Run = cmp.Or(run, b.sum.Run)
	b.sum.Peer = cmp.Or(peer, b.sum.Peer)
	b.sum.Params = cmp.Or(params, b.sum.Params)
	b.seqLen = cmp.Or(seqLen, b.seqLen)
	b.touch()
}

// touch marks a change; b.mu is held.
func (b *Board) touch() {
	b.version++
	close(b.changed)
	b.changed = make(chan struct{})
}

// Apply folds one metrics.jsonl record ({"time": …, "event": …, fields})
// into the board. Records it does not know, and fields of the wrong type,
// are skipped: a log is read back as it is.
func (b *Board) Apply(rec map[string]any) {
	r := record(rec)
	at := r.time("time")
	b.mu.Lock()
	defer b.mu.Unlock()
	b.at = at
	b.sum.Updated = at
	switch r.str("event") {
	case "start":
		if b.sum.Started.IsZero() {
			b.sum.Started = at // the run's start, as far as this log goes back
		}
		b.sum.Peer = cmp.Or(r.str("peer"), b.sum.Peer)
		if p, ok := r.int("params"); ok && p > 0 {
			b.sum.Params = p
		}
		b.note(at, "start", "started"+r.suffix("peer", " as "))
	case "stop":
		b.note(at, "stop", "stopped: "+r.str("reason")+r.suffix("error", ": "))
	case "epoch":
		b.epoch(r, at)
	case "round":
		b.round(r, at)
	case "probe":
		b.probe(r, at)
	case "verdict":
		b.verdict(r, at)
	case "step":
		b.step(r, at)
	case "eval":
		b.eval(r)
	case "load":
		b.note(at, "load", "loaded the state of epoch "+r.num("epoch")+" from "+r.str("source")+r.suffix("error", ", failed: "))
	default:
		return
	}
	b.touch()
}

// epoch folds an epoch's close: a validator's (weights and sightings) or
// a miner's (its own loss, held-out loss and tokens).
func (b *Board) epoch(r record, at time.Time) {
	e, _ := r.uint("epoch")
	b.sum.Epoch = max(b.sum.Epoch, e)
	p := Point{Epoch: e, Time: at, Loss: r.float("loss"), ValLoss: r.float("val_loss")}
	if s, ok := r.int("samples"); ok && r.has("weights") {
		b.samples += s
		p.Tokens = b.samples * max(b.seqLen, 0)
		if b.seqLen == 0 {
			p.Tokens = b.samples
		}
	} else if t, ok := r.int("tokens"); ok {
		p.Tokens = t
	}
	b.sum.Tokens = p.Tokens
	if up, down := r.float("up_mbps"), r.float("down_mbps"); up != nil && down != nil && *up > 0 && *down > 0 {
		b.up, b.down = up, down
	}
	if v, ok := b.val[e]; ok && p.ValLoss == nil {
		p.ValLoss = &v
		delete(b.val, e)
	}
	if n := len(b.points); n > 0 && b.points[n-1].Epoch == e {
		b.points[n-1] = p // an epoch closed again (a miner that dropped it)
	} else if n < maxPoints {
		b.points = append(b.points, p)
	}
	for _, w := range r.list("weights") {
		m := b.miner(w.str("miner"))
		if m == nil {
			continue
		}
		m.Weight, _ = w.f("weight")
		m.Score, _ = w.f("score")
		m.Gate, _ = w.f("gate")
		m.Work, _ = w.f("work")
		m.Network, _ = w.f("network")
		m.Delivery = w.float("delivery")
		m.Active = w.bool("active")
	}
	if n, ok := r.intv("validators"); ok {
		b.sum.Validators = n
	}
	for _, s := range r.list("seen") {
		m := b.miner(s.str("miner"))
		if m == nil {
			continue
		}
		m.Epoch, _ = s.uint("epoch")
		m.Seen = s.time("seen")
		m.Loss = s.float("loss")
	}
}

// step folds a trainer's optimizer step: its points are by step.
func (b *Board) step(r record, at time.Time) {
	n, ok := r.uint("step")
	if !ok {
		return
	}
	p := Point{Epoch: n, Time: at, Loss: r.float("loss")}
	p.Tokens, _ = r.int("tokens")
	b.sum.Epoch, b.sum.Tokens = max(b.sum.Epoch, n), p.Tokens
	if len(b.points) < maxPoints {
		b.points = append(b.points, p)
	}
}

// eval folds a held-out loss of an epoch's state (a validator's, which
// comes after the epoch closed, or just before), or of a trainer's step.
func (b *Board) eval(r record) {
	e, ok := r.uint("epoch")
	if !ok {
		e, ok = r.uint("step")
	}
	v := r.float("val_loss")
	if !ok || v == nil {
		return
	}
	for i := len(b.points) - 1; i >= 0 && b.points[i].Epoch >= e; i-- {
		if b.points[i].Epoch == e {
			b.points[i].ValLoss = v
			return
		}
	}
	if b.val == nil {
		b.val = map[uint64]float64{}
	}
	if len(b.val) < 64 {
		b.val[e] = *v
	}
}

func (b *Board) round(r record, at time.Time) {
	e, _ := r.uint("epoch")
	row := RoundRow{Time: at, Epoch: e, Err: r.str("error")}
	row.Members, _ = r.intv("members")
	row.Contributors, _ = r.intv("contributors")
	row.TookS, _ = r.f("took_s")
	sent, _ := r.int("bytes_sent")
	recv, _ := r.int("bytes_received")
	row.Bytes = sent + recv
	b.rounds = append(b.rounds, row)
	if len(b.rounds) > maxRounds {
		b.rounds = slices.Delete(b.rounds, 0, len(b.rounds)-maxRounds)
	}
	delivered := map[string]bool{}
	for _, id := range r.strs("delivered") {
		delivered[id] = true
	}
	for _, id := range r.strs("expected") {
		if m := b.miner(id); m != nil {
			if delivered[id] {
				m.Joined++
			} else {
				m.Failed++
			}
		}
	}
}

func (b *Board) probe(r record, at time.Time) {
	m := b.miner(r.str("miner"))
	if m == nil {
		return
	}
	if r.bool("failed") {
		m.UpMbps, m.DownMbps, m.RTTms = nil, nil, nil
		b.note(at, "probe", "probe of "+short(m.Peer)+" failed")
		return
	}
	m.UpMbps, m.DownMbps, m.RTTms = r.float("up_mbps"), r.float("down_mbps"), r.float("rtt_ms")
}

func (b *Board) verdict(r record, at time.Time) {
	m := b.miner(r.str("miner"))
	if m == nil {
		return
	}
	m.Verdict, m.Reason = r.str("verdict"), r.str("reason")
	m.VerdictAt, _ = r.uint("epoch")
	if m.Verdict == "cheat" {
		b.sum.Caught++
		b.note(at, "caught", "caught "+short(m.Peer)+" in epoch "+r.num("epoch")+r.suffix("reason", ": "))
	}
}

// miner returns the row of id, made if new; nil for an empty id or past
// the bound.
func (b *Board) miner(id string) *MinerRow {
	if id == "" {
		return nil
	}
	m := b.miners[id]
	if m == nil {
		if len(b.miners) >= maxMiners {
			return nil
		}
		m = &MinerRow{Peer: id}
		b.miners[id] = m
		b.note(b.at, "join", short(id)+" first heard")
	}
	return m
}

func (b *Board) note(at time.Time, kind, text string) {
	b.notes = append(b.notes, Note{Time: at, Kind: kind, Text: text})
	if len(b.notes) > maxNotes {
		b.notes = slices.Delete(b.notes, 0, len(b.notes)-maxNotes)
	}
}

// short is a peer id's last 8 characters, as the tables show it.
func short(id string) string {
	if len(id) > 8 {
		return "…" + id[len(id)-8:]
	}
	return id
}

// staleAfter is how long a miner may go unheard before it shows as
// stale: three epochs' time at the recent pace, at least 30 s.
func (b *Board) staleAfter() time.Duration {
	d := 10 * time.Second
	if n := len(b.points); n >= 2 {
		first := max(0, n-6)
		if span := b.points[n-1].Time.Sub(b.points[first].Time); span > 0 {
			d = span / time.Duration(n-1-first)
		}
	}
	return max(30*time.Second, 3*d)
}

// Summary returns the run as a whole, now.
func (b *Board) Summary() Summary {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sum
	now, stale := b.now(), b.staleAfter()
	s.Miners = len(b.miners)
	for _, m := range b.miners {
		if now.Sub(m.Seen) <= stale {
			s.Live++
		}
	}
	if n := len(b.points); n >= 2 {
		first := max(0, n-6)
		a, z := b.points[first], b.points[n-1]
		if dt := z.Time.Sub(a.Time).Seconds(); dt > 0 && z.Tokens > a.Tokens {
			s.TokensPerS = float64(z.Tokens-a.Tokens) / dt
		}
	}
	return s
}

// Points returns the closed epochs, in order.
func (b *Board) Points() []Point {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.points)
}

// Miners returns the miners by peer id, each marked stale or not now.
func (b *Board) Miners() []MinerRow {
	b.mu.Lock()
	defer b.mu.Unlock()
	now, stale := b.now(), b.staleAfter()
	out := make([]MinerRow, 0, len(b.miners))
	for _, id := range slices.Sorted(maps.Keys(b.miners)) {
		m := *b.miners[id]
		m.Stale = now.Sub(m.Seen) > stale
		out = append(out, m)
	}
	return out
}

// Rounds returns the recent rounds, newest first.
func (b *Board) Rounds() []RoundRow {
	b.mu.Lock()
	defer b.mu.Unlock()
	return newestFirst(b.rounds)
}

// Notes returns the recent notes, newest first.
func (b *Board) Notes() []Note {
	b.mu.Lock()
	defer b.mu.Unlock()
	return newestFirst(b.notes)
}

// newestFirst is a copy of s, kept oldest first, in reverse.
func newestFirst[T any](s []T) []T {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// record reads a decoded JSON object's fields by type, leniently.
type record map[string]any

func (r record) has(k string) bool { _, ok := r[k]; return ok }

func (r record) str(k string) string {
	s, _ := r[k].(string)
	return s
}

func (r record) suffix(k, sep string) string {
	if s := r.str(k); s != "" {
		return sep + s
	}
	return ""
}

func (r record) f(k string) (float64, bool) {
	v, ok := r[k].(float64)
	return v, ok && !math.IsNaN(v) && !math.IsInf(v, 0)
}

func (r record) float(k string) *float64 {
	if v, ok := r.f(k); ok {
		return &v
	}
	return nil
}

func (r record) int(k string) (int64, bool) {
	v, ok := r.f(k)
	if !ok || v < -1<<62 || v > 1<<62 {
		return 0, false
	}
	return int64(v), true
}

func (r record) intv(k string) (int, bool) {
	v, ok := r.int(k)
	return int(min(max(v, math.MinInt32), math.MaxInt32)), ok
}

func (r record) uint(k string) (uint64, bool) {
	v, ok := r.f(k)
	if !ok || v < 0 || v >= 1<<63 {
		return 0, false
	}
	return uint64(v), true
}

func (r record) num(k string) string {
	if v, ok := r.uint(k); ok {
		return strconv.FormatUint(v, 10)
	}
	return "?"
}

func (r record) bool(k string) bool {
	v, _ := r[k].(bool)
	return v
}

func (r record) time(k string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, r.str(k))
	if err != nil {
		return time.Time{}
	}
	return t
}

func (r record) list(k string) []record {
	xs, _ := r[k].([]any)
	out := make([]record, 0, len(xs))
	for _, x := range xs {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func (r record) strs(k string) []string {
	xs, _ := r[k].([]any)
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
