package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/dtrain-dev/dtrain/node/score"
)

// minerStat is what the swarm knows about one miner.
type minerStat struct {
	idx, pid, gen int
	peer          string
	running       bool
	// synced: the miner reports with the swarm, so epoch lines wait for it.
	// The first miners are from the start; a late or restarted one once it
	// reports an epoch the swarm has not printed yet.
	synced     bool
	last       int64     // last epoch reported; -1: none
	lastAt     time.Time // when
	epochs     int
	tokens     int64 // trained in this swarm run, all its processes
	lastTokens int64 // the process's own counter at its last epoch; -1: none yet
	bytes      int64
	val        float64
	late       bool
	loads      int
	exit       string
	lastErr    string // the error its last process stopped with
	// up and down are the link rates (Mbit/s) the miner last announced, as
	// it measured them; role the all-reduce role it announced.
	up, down float64
	role     string
	// cheat is the cheat it plays (--cheat), "" if honest; weight its
	// last weight from validator 1, of epoch weightEpoch (nil: none yet).
	cheat       string
	weight      *score.MinerWeight
	weightEpoch uint64
}

type epochReport struct {
	who          int
	loss, val    float64
	contributors int
	alone        string
	dropped      bool // the miner dropped its update and holds the epoch's start: no version of the epoch
	sync         time.Duration
	bytes        int64
	hash         string
}

type epochAgg struct {
	first   time.Time
	reports []epochReport
}

// epochLine is one printed swarm epoch.
type epochLine struct {
	Event        string  `json:"event"`
	T            float64 `json:"t"`
	Epoch        int64   `json:"epoch"`
	Loss         float64 `json:"loss"`
	ValLoss      float64 `json:"val_loss,omitempty"`
	Tokens       int64   `json:"tokens"`
	SyncMS       int64   `json:"sync_ms"`
	BytesSent    int64   `json:"bytes_sent"`
	Reports      int     `json:"miners"`
	Contributors int     `json:"contributors"`
	Hashes       int     `json:"param_hashes"`
	Alone        []int   `json:"alone,omitempty"`
	Dropped      []int   `json:"dropped,omitempty"`
}

// swarmReport turns the miners' events (their metrics.jsonl lines) into
// what a person reads: one line per swarm epoch, events between, a summary
// at the end. It never touches a process, so tests drive it with lines and
// times.
type swarmReport struct {
	w        io.Writer
	json     bool
	start    time.Time
	wait     time.Duration // least an epoch line waits for a slow miner
	interval time.Duration // a miner's recent epoch time; lines wait twice that
	perEpoch int64         // tokens a miner trains per epoch, for a first report
	logs     string        // where the logs are, for the summary

	miners  []*minerStat // miner i at i-1
	pending map[int64]*epochAgg
	next    int64 // lowest epoch not printed yet
	printed []epochLine
	tokens  int64
	bytes   int64
}

func newSwarmReport(w io.Writer, asJSON bool, start time.Time, perEpoch int64) *swarmReport {
	return &swarmReport{w: w, json: asJSON, start: start, wait: 20 * time.Second, perEpoch: perEpoch,
		pending: map[int64]*epochAgg{}}
}

func (r *swarmReport) miner(i int) *minerStat {
	for len(r.miners) < i {
		r.miners = append(r.miners, &minerStat{idx: len(r.miners) + 1, last: -1, lastTokens: -1})
	}
	return r.miners[i-1]
}

// started records a miner process: the first start (late or not) or a restart.
func (r *swarmReport) started(i, pid int, late bool) {
	m := r.miner(i)
	m.pid, m.running, m.lastTokens, m.lastErr = pid, true, -1, ""
	m.gen++
	m.late = m.late || late
	m.synced = m.gen == 1 && !late
	m.exit = ""
}

// exited records a miner's end; expected when the swarm stopped it.
func (r *swarmReport) exited(now time.Time, i int, err error, expected bool) {
	m := r.miner(i)
	m.running = false
	if expected {
		return
	}
	m.exit = "exited"
	if err != nil {
		m.exit = err.Error()
	}
	if m.lastErr != "" {
		m.exit += ": " + m.lastErr
	}
	r.event(now, "exited", fmt.Sprintf("miner %d %s (see its log)", i, m.exit), map[string]any{"miner": i, "status": m.exit})
}

// line handles one line of miner i's metrics.jsonl.
func (r *swarmReport) line(now time.Time, i int, text string) {
	l, ok := parseMinerEvent(text)
	if !ok {
		return
	}
	m := r.miner(i)
	if l.Peer != "" {
		m.peer = l.Peer
	}
	switch {
	case l.Event == "epoch" && l.Epoch != nil:
		if l.UpMbps > 0 || l.DownMbps > 0 {
			m.up, m.down = float64(l.UpMbps), float64(l.DownMbps) // what it announced for the epoch
		}
		r.epoch(now, m, *l.Epoch, l)
	case l.Event == "load" && l.Error == "" && l.Epoch != nil:
		m.loads++
		ep, took := *l.Epoch, float64(l.TookS)
		mbs := float64(l.Bytes) / 1e6 / max(took, 1e-9)
		// It trains this epoch next, with the swarm: epoch lines wait for it.
		m.synced, m.last = ep >= r.next, ep-1
		from := fmt.Sprintf("%d peer(s)", l.Donors)
		if l.Source == "hub" {
			from = "the hub"
		}
		r.event(now, "state_loaded", fmt.Sprintf("miner %d loaded the state of epoch %d from %s: %s in %.1f s (%.0f MB/s)",
			i, ep, from, humanBytes(l.Bytes), took, mbs),
			map[string]any{"miner": i, "epoch": ep, "bytes": l.Bytes, "took_ms": int64(took * 1e3), "mb_per_s": mbs, "donors": l.Donors,
				"source": l.Source})
	case l.Event == "announce":
		m.up, m.down, m.role = float64(l.UpMbps), float64(l.DownMbps), l.Role
	case l.Event == "probe":
		r.event(now, "link_probed", fmt.Sprintf("miner %d probed its link with %d peer(s): up %.0f Mbit/s, down %.0f Mbit/s",
			i, l.Peers, float64(l.UpMbps), float64(l.DownMbps)),
			map[string]any{"miner": i, "peers": l.Peers, "up_mbps": float64(l.UpMbps), "down_mbps": float64(l.DownMbps)})
	case l.Event == "start" && l.Resumed && l.Epoch != nil:
		ep := *l.Epoch
		m.synced, m.last = ep >= r.next, ep-1
		r.event(now, "resumed", fmt.Sprintf("miner %d resumed from its checkpoint at epoch %d", i, ep),
			map[string]any{"miner": i, "epoch": ep})
	case l.Event == "error":
		msg := l.Op + ": " + l.Error
		r.event(now, "error", fmt.Sprintf("miner %d: %s", i, msg), map[string]any{"miner": i, "error": msg})
	case l.Event == "stop" && l.Error != "":
		m.lastErr = l.Error
	}
}

func (r *swarmReport) epoch(now time.Time, m *minerStat, e int64, l minerEvent) {
	m.epochs++
	m.bytes += l.BytesSent
	r.bytes += l.BytesSent
	delta := r.perEpoch
	if l.Tokens != nil {
		if m.lastTokens >= 0 && *l.Tokens >= m.lastTokens {
			delta = *l.Tokens - m.lastTokens
		}
		m.lastTokens = *l.Tokens
	}
	m.tokens += delta
	r.tokens += delta
	if l.ValLoss > 0 {
		m.val = float64(l.ValLoss)
	}
	if m.last == e-1 && !m.lastAt.IsZero() {
		// Rise at once, fall slowly: a loaded machine slows every epoch.
		iv := now.Sub(m.lastAt)
		r.interval = max(iv, (3*r.interval+iv)/4)
	}
	m.last, m.lastAt = e, now
	if e < r.next {
		return // behind the swarm: counted, but its epoch is printed already
	}
	m.synced = true
	a := r.pending[e]
	if a == nil {
		a = &epochAgg{first: now}
		r.pending[e] = a
	}
	a.reports = append(a.reports, epochReport{who: m.idx, loss: float64(l.Loss), val: float64(l.ValLoss),
		contributors: l.Contributors, alone: l.Alone, dropped: l.Dropped, sync: time.Duration(float64(l.SyncS) * float64(time.Second)),
		bytes: l.BytesSent, hash: l.ParamHash})
	r.flush(now, false)
}

// ready: no running miner in step with the swarm still owes epoch e.
func (r *swarmReport) ready(now time.Time, e int64, a *epochAgg) bool {
	if now.Sub(a.first) >= max(r.wait, 2*r.interval) {
		return true
	}
	for _, m := range r.miners {
		if m.running && m.synced && m.last == e-1 {
			return false
		}
	}
	return true
}

// flush prints the epochs that are complete, in order; final prints all.
func (r *swarmReport) flush(now time.Time, final bool) {
	for len(r.pending) > 0 {
		e := int64(-1)
		for k := range r.pending {
			if e < 0 || k < e {
				e = k
			}
		}
		a := r.pending[e]
		if !final && !r.ready(now, e, a) {
			return
		}
		delete(r.pending, e)
		r.printEpoch(now, e, a)
		r.next = e + 1
	}
}

func (r *swarmReport) printEpoch(now time.Time, e int64, a *epochAgg) {
	l := epochLine{Event: "epoch", T: r.since(now).Seconds(), Epoch: e, Tokens: r.tokens, Reports: len(a.reports)}
	hashes := map[string]bool{}
	var vals int
	for _, p := range a.reports {
		l.Loss += p.loss / float64(len(a.reports))
		if p.val > 0 {
			l.ValLoss += p.val
			vals++
		}
		l.SyncMS = max(l.SyncMS, p.sync.Milliseconds())
		l.BytesSent += p.bytes
		l.Contributors = max(l.Contributors, p.contributors)
		if p.dropped {
			// It goes on from the swarm's state (node/epoch), loaded or
			// trained again: its start state is no version of the epoch.
			l.Dropped = append(l.Dropped, p.who)
			continue
		}
		hashes[p.hash] = true
		if p.alone != "" {
			l.Alone = append(l.Alone, p.who)
		}
	}
	if vals > 0 {
		l.ValLoss /= float64(vals)
	}
	l.Hashes = len(hashes)
	slices.Sort(l.Alone)
	slices.Sort(l.Dropped)
	r.printed = append(r.printed, l)
	if r.json {
		r.emit(l)
		return
	}
	if len(r.printed) == 1 {
		fmt.Fprintf(r.w, "\n%6s %5s %10s %9s %8s %10s %9s %6s  %s\n",
			"time", "epoch", "train loss", "held-out", "tokens", "all-reduce", "sent", "group", "params")
	}
	val := "-"
	if vals > 0 {
		val = fmt.Sprintf("%.4f", l.ValLoss)
	}
	agree := "agree"
	if l.Hashes > 1 {
		agree = fmt.Sprintf("%d versions", l.Hashes)
	}
	if len(l.Alone) > 0 {
		agree += fmt.Sprintf(" (alone: miner %s)", joinInts(l.Alone))
	}
	if len(l.Dropped) > 0 {
		agree += fmt.Sprintf(" (dropped: miner %s)", joinInts(l.Dropped))
	}
	fmt.Fprintf(r.w, "%6s %5d %10.4f %9s %8s %8.2f s %9s %6s  %s\n",
		fmtClock(r.since(now)), e, l.Loss, val, fmtCount(l.Tokens), float64(l.SyncMS)/1e3, humanBytes(l.BytesSent),
		fmt.Sprintf("%d/%d", l.Contributors, l.Reports), agree)
}

// event prints a fact of the run on its own line (text) or as an object.
func (r *swarmReport) event(now time.Time, kind, text string, fields map[string]any) {
	if r.json {
		obj := map[string]any{"event": kind, "t": r.since(now).Seconds()}
		for k, v := range fields {
			obj[k] = v
		}
		r.emit(obj)
		return
	}
	fmt.Fprintf(r.w, "%6s  * %s\n", fmtClock(r.since(now)), text)
}

func (r *swarmReport) emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"event": "error", "error": err.Error()})
	}
	fmt.Fprintf(r.w, "%s\n", b)
}

func (r *swarmReport) since(now time.Time) time.Duration { return now.Sub(r.start) }
