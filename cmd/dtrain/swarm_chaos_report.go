package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The chaos figures (dtrain swarm --chaos), from the miners' typed events
// (their metrics.jsonl lines; "line" below is one of those):
//
//   - epochs: the swarm epochs that ended, the distinct e of the miners'
//     "epoch" lines. Epoch e is averaged when every "epoch" line for e that
//     did not drop the update (any miner, any process, any time) applied a
//     group mean of ≥ 2 updates (contributors ≥ 2) and all name the same
//     param_hash X, and every miner that dropped e then took X: its next
//     line is a load of (e+1, X), an epoch line of e+1 that starts from X,
//     or a load past e+1 (it caught up with the swarm). A miner that drops
//     stays at its epoch (node/epoch), so its dropped line is no version of
//     e; what counts is that every miner alive at the epoch's end holds the
//     one averaged state. Target: ≥ 90% of the epochs.
//   - solo forks: the "epoch" lines (miner, e) that applied the miner's own
//     update alone (contributors < 2, not dropped) while another miner
//     also finished e: the miner now holds parameters no one else does.
//     Target: 0.
//   - averaged replaced by dropped: the "load" lines whose miner's
//     last "epoch" line before it averaged e (result X) and whose loaded
//     state (epoch k ≥ e+1, param_hash H) descends from a dropped update of
//     e: following start_hash back from (k, H) to epoch e+1 reaches a state
//     other than X that an "epoch" line of e with dropped=true made (its
//     start state relabelled e+1). The miner threw its averaged update away
//     for one nobody applied. Target: 0.
//   - kills, restarts, stops (SIGSTOP freezes), state loads (of which
//     diverged: loads of the epoch the miner was already at, so it held
//     another state than the swarm's there), and the longest stretch a
//     miner process ran (started, not frozen, not yet ended) without
//     finishing an epoch: from its start or its last "epoch" line to its
//     next one, its end, or the end of the run.
type chaosTally struct {
	start                  time.Time
	epochs                 []chaosEpoch
	loads                  []chaosLoad
	last                   map[int]int // miner → index in epochs of its latest line
	seq                    int         // lines read so far, epoch and load lines alike
	clocks                 map[int]*minerClock
	kills, restarts, stops int
	gap                    chaosGap
	done                   bool // the run is over: clocks stopped
}

// chaosEpoch is one "epoch" line.
type chaosEpoch struct {
	miner        int
	epoch        int64
	contributors int
	dropped      bool
	hash, start  string // param_hash: after the epoch; start_hash: before it
	seq          int    // order read, among epoch and load lines
}

// averaged: the miner applied the mean of a group of two or more.
func (r chaosEpoch) averaged() bool { return !r.dropped && r.contributors >= 2 }

// solo: the miner applied its own update alone.
func (r chaosEpoch) solo() bool { return !r.dropped && r.contributors < 2 }

// chaosLoad is one successful "load" line.
type chaosLoad struct {
	miner    int
	epoch    int64
	hash     string
	diverged bool
	at       time.Time
	seq      int
	last     *chaosEpoch // the miner's latest "epoch" line before it; nil: none
}

// minerClock times one miner process since its start or its last epoch,
// leaving out the time it was frozen.
type minerClock struct {
	running  bool
	since    time.Time
	frozen   time.Duration // frozen since `since`, before frozenAt
	frozenAt time.Time     // zero unless frozen now
}

func (c *minerClock) elapsed(now time.Time) time.Duration {
	d := now.Sub(c.since) - c.frozen
	if !c.frozenAt.IsZero() {
		d -= now.Sub(c.frozenAt)
	}
	return d
}

// chaosGap is the longest a running miner went without finishing an epoch.
type chaosGap struct {
	took  time.Duration
	miner int
	until time.Time
}

func newChaosTally(start time.Time) *chaosTally {
	return &chaosTally{start: start, last: map[int]int{}, clocks: map[int]*minerClock{}}
}

// started records a miner process's start; a miner seen before restarts.
func (t *chaosTally) started(now time.Time, i int) {
	if _, seen := t.clocks[i]; seen {
		t.restarts++
	}
	t.clocks[i] = &minerClock{running: !t.done, since: now}
}

// killed records a SIGKILL from the plan.
func (t *chaosTally) killed(now time.Time, i int) {
	t.kills++
	t.ended(now, i)
}

// ended records a miner process's end, however it came.
func (t *chaosTally) ended(now time.Time, i int) {
	if c := t.clocks[i]; c != nil && c.running {
		t.measure(now, i, c)
		c.running = false
	}
}

func (t *chaosTally) stopped(now time.Time, i int) {
	t.stops++
	if c := t.clocks[i]; c != nil && c.frozenAt.IsZero() {
		c.frozenAt = now
	}
}

func (t *chaosTally) continued(now time.Time, i int) {
	if c := t.clocks[i]; c != nil && !c.frozenAt.IsZero() {
		c.frozen += now.Sub(c.frozenAt)
		c.frozenAt = time.Time{}
	}
}

// finish ends the run's clocks: what comes after is the shutdown.
func (t *chaosTally) finish(now time.Time) {
	for i := range t.clocks {
		t.ended(now, i)
	}
	t.done = true
}

func (t *chaosTally) measure(now time.Time, i int, c *minerClock) {
	if d := c.elapsed(now); d > t.gap.took {
		t.gap = chaosGap{took: d, miner: i, until: now}
	}
}

// line reads one line of miner i's metrics.jsonl.
func (t *chaosTally) line(now time.Time, i int, text string) {
	l, ok := parseMinerEvent(text)
	if !ok || l.Epoch == nil {
		return
	}
	switch {
	case l.Event == "epoch":
		t.seq++
		t.epochs = append(t.epochs, chaosEpoch{miner: i, epoch: *l.Epoch, contributors: l.Contributors, dropped: l.Dropped,
			hash: l.ParamHash, start: l.StartHash, seq: t.seq})
		t.last[i] = len(t.epochs) - 1
		if c := t.clocks[i]; c != nil && c.running {
			t.measure(now, i, c)
			c.since, c.frozen = now, 0
			if !c.frozenAt.IsZero() { // a line read after the freeze
				c.frozenAt = now
			}
		}
	case l.Event == "load" && l.Error == "":
		t.seq++
		// A load of the epoch the miner was at replaces the state it held
		// there: it held another than the swarm's (node/epoch's diverged
		// and off-lineage rules). The others load a later epoch.
		ld := chaosLoad{miner: i, epoch: *l.Epoch, hash: l.ParamHash, diverged: l.FromEpoch == *l.Epoch, at: now, seq: t.seq}
		if k, ok := t.last[i]; ok {
			r := t.epochs[k]
			ld.last = &r
		}
		t.loads = append(t.loads, ld)
	}
}

// chaosFigures are the figures, as --json prints them (times in seconds
// since the swarm started).
type chaosFigures struct {
	Event          string            `json:"event"`
	Seed           uint64            `json:"seed"`
	Epochs         int               `json:"epochs"`
	Averaged       int               `json:"averaged_epochs"`
	AveragedPct    float64           `json:"averaged_pct"`
	NotAveraged    []chaosBadEpoch   `json:"not_averaged"`
	SoloForks      int               `json:"solo_forks"`
	Solo           []chaosMinerEpoch `json:"solo_fork_list"`
	Replaced       int               `json:"averaged_replaced_by_dropped"`
	ReplacedList   []chaosReplaced   `json:"replaced_list"`
	UntracedLoads  int               `json:"untraced_loads"`
	Kills          int               `json:"kills"`
	Restarts       int               `json:"restarts"`
	Stops          int               `json:"stops"`
	StateLoads     int               `json:"state_loads"`
	DivergedLoads  int               `json:"diverged_loads"`
	LongestS       float64           `json:"longest_without_epoch_s"`
	LongestMiner   int               `json:"longest_miner"`
	LongestUntilT  float64           `json:"longest_until_t"`
	TargetAveraged float64           `json:"target_averaged_pct"`
}

// chaosBadEpoch is an epoch not averaged by all: how many miners finished
// it, how many parameter versions they hold, who dropped, who went alone.
type chaosBadEpoch struct {
	Epoch    int64 `json:"epoch"`
	Miners   int   `json:"miners"`
	Versions int   `json:"versions"`
	Dropped  []int `json:"dropped,omitempty"`
	Missed   []int `json:"missed,omitempty"` // dropped and did not take the averaged state
	Alone    []int `json:"alone,omitempty"`
}

type chaosMinerEpoch struct {
	Miner int   `json:"miner"`
	Epoch int64 `json:"epoch"`
}

// chaosReplaced: miner averaged epoch Averaged, then loaded the state of
// epoch Loaded (param hash Hash) that descends from a dropped update.
type chaosReplaced struct {
	Miner    int     `json:"miner"`
	Averaged int64   `json:"averaged"`
	Loaded   int64   `json:"loaded"`
	Hash     string  `json:"hash"`
	T        float64 `json:"t"`
}

// stateKey is a state as the lineage knows it: the epoch it starts and its
// parameters' hash.
type stateKey struct {
	epoch int64
	hash  string
}

// figures computes the figures from what the tally has read.
func (t *chaosTally) figures(seed uint64) chaosFigures {
	f := chaosFigures{Event: "chaos", Seed: seed, Kills: t.kills, Restarts: t.restarts, Stops: t.stops,
		StateLoads: len(t.loads), TargetAveraged: 90, LongestS: t.gap.took.Seconds(), LongestMiner: t.gap.miner}
	if !t.gap.until.IsZero() {
		f.LongestUntilT = t.gap.until.Sub(t.start).Seconds()
	}
	byEpoch := map[int64][]chaosEpoch{}
	parent := map[stateKey]stateKey{}
	droppedMade := map[stateKey]bool{}
	for _, r := range t.epochs {
		byEpoch[r.epoch] = append(byEpoch[r.epoch], r)
		next := stateKey{r.epoch + 1, r.hash}
		if r.start != "" {
			parent[next] = stateKey{r.epoch, r.start}
		}
		if r.dropped {
			droppedMade[next] = true
		}
	}
	for _, e := range slices.Sorted(maps.Keys(byEpoch)) {
		f.Epochs++
		rs := byEpoch[e]
		bad := chaosBadEpoch{Epoch: e, Miners: len(rs)}
		hashes := map[string]bool{}
		for _, r := range rs {
			if !r.dropped {
				hashes[r.hash] = true
			}
			if r.dropped {
				bad.Dropped = append(bad.Dropped, r.miner)
			} else if r.solo() {
				bad.Alone = append(bad.Alone, r.miner)
				if slices.ContainsFunc(rs, func(o chaosEpoch) bool { return o.miner != r.miner }) {
					f.Solo = append(f.Solo, chaosMinerEpoch{r.miner, e})
				}
			}
		}
		bad.Versions = len(hashes)
		slices.Sort(bad.Dropped)
		slices.Sort(bad.Alone)
		took := true
		for _, r := range rs {
			if r.dropped && (bad.Versions != 1 || !t.tookAfter(r, slices.Collect(maps.Keys(hashes))[0])) {
				took = false
				bad.Missed = append(bad.Missed, r.miner)
			}
		}
		slices.Sort(bad.Missed)
		if bad.Versions == 1 && took && len(bad.Alone) == 0 {
			f.Averaged++
		} else {
			f.NotAveraged = append(f.NotAveraged, bad)
		}
	}
	if f.Epochs > 0 {
		f.AveragedPct = 100 * float64(f.Averaged) / float64(f.Epochs)
	}
	for _, l := range t.loads {
		if l.diverged {
			f.DivergedLoads++
		}
		if l.last == nil || !l.last.averaged() || l.epoch < l.last.epoch+1 {
			continue
		}
		n := stateKey{l.epoch, l.hash}
		for n.epoch > l.last.epoch+1 {
			p, ok := parent[n]
			if !ok {
				break
			}
			n = p
		}
		if l.hash == "" || n.epoch != l.last.epoch+1 {
			f.UntracedLoads++
			continue
		}
		if n.hash != l.last.hash && droppedMade[n] {
			f.ReplacedList = append(f.ReplacedList, chaosReplaced{Miner: l.miner, Averaged: l.last.epoch, Loaded: l.epoch,
				Hash: l.hash, T: l.at.Sub(t.start).Seconds()})
		}
	}
	f.SoloForks, f.Replaced = len(f.Solo), len(f.ReplacedList)
	return f
}

// tookAfter reports whether miner r.miner, after dropping epoch r.epoch,
// came to hold the epoch's averaged state x: its next line is a load of
// (e+1, x), an epoch line of e+1 that starts from x, or a load of a later
// epoch.
func (t *chaosTally) tookAfter(r chaosEpoch, x string) bool {
	next := r.epoch + 1
	for _, e := range t.epochs {
		if e.miner == r.miner && e.seq > r.seq {
			for _, l := range t.loads {
				if l.miner == r.miner && l.seq > r.seq && l.seq < e.seq {
					return l.epoch > next || (l.epoch == next && l.hash == x)
				}
			}
			return e.epoch == next && e.start == x
		}
	}
	for _, l := range t.loads {
		if l.miner == r.miner && l.seq > r.seq {
			return l.epoch > next || (l.epoch == next && l.hash == x)
		}
	}
	return false
}

// printChaos prints the figures after the summary.
func (r *swarmReport) printChaos(f chaosFigures) {
	if r.json {
		r.emit(f)
		return
	}
	w := r.w
	fmt.Fprintf(w, "\nchaos figures (seed %d: --seed %d repeats the plan, not the timing):\n", f.Seed, f.Seed)
	fmt.Fprintf(w, "  epochs averaged and held by every miner that finished them: %d of %d (%.0f%%; target ≥ %.0f%%)\n",
		f.Averaged, f.Epochs, f.AveragedPct, f.TargetAveraged)
	if len(f.NotAveraged) > 0 {
		var not []string
		for _, b := range f.NotAveraged {
			not = append(not, b.String())
		}
		fmt.Fprintf(w, "    not: %s\n", strings.Join(not, "; "))
	}
	var solo []string
	for _, s := range f.Solo {
		solo = append(solo, fmt.Sprintf("miner %d epoch %d", s.Miner, s.Epoch))
	}
	fmt.Fprintf(w, "  solo forks: %d (target 0)%s\n", f.SoloForks, listSuffix(solo))
	var repl []string
	for _, x := range f.ReplacedList {
		repl = append(repl, fmt.Sprintf("at %s miner %d, which averaged epoch %d, loaded epoch %d (%s) from a dropped update",
			fmtClock(time.Duration(x.T*float64(time.Second))), x.Miner, x.Averaged, x.Loaded, x.Hash))
	}
	fmt.Fprintf(w, "  averaged updates replaced by dropped ones: %d (target 0)%s\n", f.Replaced, listSuffix(repl))
	if f.UntracedLoads > 0 {
		fmt.Fprintf(w, "    (%d state loads after an averaged epoch could not be traced back to it)\n", f.UntracedLoads)
	}
	fmt.Fprintf(w, "  kills %d, restarts %d, freezes %d, state loads %d (%d diverged)\n",
		f.Kills, f.Restarts, f.Stops, f.StateLoads, f.DivergedLoads)
	fmt.Fprintf(w, "  longest a running miner went without finishing an epoch: %.0f s (miner %d, until %s)\n",
		f.LongestS, f.LongestMiner, fmtClock(time.Duration(f.LongestUntilT*float64(time.Second))))
}

func (b chaosBadEpoch) String() string {
	s := fmt.Sprintf("epoch %d (%d miners", b.Epoch, b.Miners)
	if b.Miners == 1 {
		s = fmt.Sprintf("epoch %d (1 miner", b.Epoch)
	}
	if b.Versions > 1 {
		s += fmt.Sprintf(", %d versions", b.Versions)
	}
	if len(b.Dropped) > 0 {
		s += ", dropped: " + joinInts(b.Dropped)
	}
	if len(b.Missed) > 0 {
		s += ", then without the average: " + joinInts(b.Missed)
	}
	if len(b.Alone) > 0 {
		s += ", alone: " + joinInts(b.Alone)
	}
	return s + ")"
}

func listSuffix(items []string) string {
	if len(items) == 0 {
		return ""
	}
	return ": " + strings.Join(items, "; ")
}
