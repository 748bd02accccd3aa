package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The chaos treatment of issue 14: a random miner SIGKILLed every 30–60 s
// and restarted with its out dir 3–15 s later; twice two miners at once,
// and once one frozen with SIGSTOP for 40 s instead.
const (
	chaosEveryMin, chaosEveryMax = 30 * time.Second, 60 * time.Second
	chaosDownMin, chaosDownMax   = 3 * time.Second, 15 * time.Second
	chaosFreeze                  = 40 * time.Second
	chaosDoubles                 = 2
)

// chaosEvent is one planned disturbance: its victims are killed, each
// restarted at its Back, or (Freeze) one is stopped until its Back.
type chaosEvent struct {
	At     time.Duration // since the swarm started
	Freeze bool
	Miners []int
	Back   []time.Duration // per victim: restarted (a kill) or continued (a freeze)
}

// planChaos draws the run's disturbances from seed alone, so a seed
// repeats the plan (not the training, whose timing the machine decides).
// Each event leaves at least one miner neither down nor frozen, and every
// victim is back before the run ends.
func planChaos(seed uint64, miners int, run time.Duration) []chaosEvent {
	rng := rand.New(rand.NewPCG(seed, 0x6368616f73)) // "chaos"
	uniform := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64((hi-lo)/time.Millisecond)+1))*time.Millisecond
	}
	var evs []chaosEvent
	for t := uniform(chaosEveryMin, chaosEveryMax); t+chaosDownMax < run; t += uniform(chaosEveryMin, chaosEveryMax) {
		evs = append(evs, chaosEvent{At: t})
	}
	// Which events are the freeze and the double kills: random ones.
	victims := make([]int, len(evs))
	froze, doubles := false, 0
	for _, i := range rng.Perm(len(evs)) {
		switch {
		case !froze && evs[i].At+chaosFreeze < run:
			evs[i].Freeze, froze = true, true
			victims[i] = 1
		case doubles < chaosDoubles:
			victims[i] = 2
			doubles++
		default:
			victims[i] = 1
		}
	}
	back := make([]time.Duration, miners+1) // when miner i is up again
	planned := evs[:0]
	for i, e := range evs {
		var up []int
		for m := 1; m <= miners; m++ {
			if back[m] <= e.At {
				up = append(up, m)
			}
		}
		rng.Shuffle(len(up), func(a, b int) { up[a], up[b] = up[b], up[a] })
		n := min(victims[i], len(up)-1) // one miner keeps working
		if n <= 0 {
			continue
		}
		e.Miners = up[:n:n]
		slices.Sort(e.Miners)
		for _, m := range e.Miners {
			d := chaosFreeze
			if !e.Freeze {
				d = uniform(chaosDownMin, chaosDownMax)
			}
			back[m] = e.At + d
			e.Back = append(e.Back, e.At+d)
		}
		planned = append(planned, e)
	}
	return planned
}

// chaosOp is one act of the plan on one miner process.
type chaosOp struct {
	at    time.Duration
	miner int
	act   string // "kill", "restart", "stop" or "cont"
}

// chaosOps lays the plan out as acts in time order.
func chaosOps(plan []chaosEvent) []chaosOp {
	var ops []chaosOp
	for _, e := range plan {
		for k, m := range e.Miners {
			if e.Freeze {
				ops = append(ops, chaosOp{e.At, m, "stop"}, chaosOp{e.Back[k], m, "cont"})
			} else {
				ops = append(ops, chaosOp{e.At, m, "kill"}, chaosOp{e.Back[k], m, "restart"})
			}
		}
	}
	slices.SortStableFunc(ops, func(a, b chaosOp) int { return int(a.at - b.at) })
	return ops
}

// describeChaos is the plan as a person reads it, one event a line.
func describeChaos(plan []chaosEvent) []string {
	var lines []string
	for _, e := range plan {
		var parts []string
		for k, m := range e.Miners {
			if e.Freeze {
				parts = append(parts, fmt.Sprintf("freeze miner %d (SIGSTOP) until %s", m, fmtClock(e.Back[k])))
			} else {
				parts = append(parts, fmt.Sprintf("kill miner %d, restart at %s", m, fmtClock(e.Back[k])))
			}
		}
		lines = append(lines, fmt.Sprintf("%6s  %s", fmtClock(e.At), strings.Join(parts, "; ")))
	}
	return lines
}

// chaosRun carries out the plan on a swarm and keeps the tally.
type chaosRun struct {
	seed   uint64
	plan   []chaosEvent
	ops    []chaosOp
	next   int          // ops[next] is due next
	killed map[int]bool // killed by the plan, not restarted yet
	frozen map[int]bool // stopped by the plan, not continued yet
	tally  *chaosTally
}

func newChaosRun(seed uint64, miners int, run time.Duration, start time.Time) *chaosRun {
	plan := planChaos(seed, miners, run)
	return &chaosRun{seed: seed, plan: plan, ops: chaosOps(plan), killed: map[int]bool{}, frozen: map[int]bool{},
		tally: newChaosTally(start)}
}

// planJSON is the plan as --json prints it, times in seconds.
func (c *chaosRun) planJSON() map[string]any {
	var evs []map[string]any
	for _, e := range c.plan {
		act := "kill"
		if e.Freeze {
			act = "freeze"
		}
		back := make([]float64, len(e.Back))
		for k, b := range e.Back {
			back[k] = b.Seconds()
		}
		evs = append(evs, map[string]any{"t": e.At.Seconds(), "act": act, "miners": e.Miners, "back_t": back})
	}
	return map[string]any{"event": "chaos_plan", "seed": c.seed, "plan": evs}
}

// due returns a channel that fires when the next act is due (nil: none left).
func (c *chaosRun) due(elapsed time.Duration) <-chan time.Time {
	if c.next >= len(c.ops) {
		return nil
	}
	return time.After(c.ops[c.next].at - elapsed)
}

// down reports whether a miner killed by the plan awaits its restart.
func (c *chaosRun) down() bool { return len(c.killed) > 0 }

// chaosStep carries out the acts that are due.
func (s *swarm) chaosStep() error {
	c := s.chaos
	now := time.Now()
	for ; c.next < len(c.ops) && c.ops[c.next].at <= now.Sub(s.rep.start); c.next++ {
		op := c.ops[c.next]
		p := s.children[op.miner]
		fields := map[string]any{"miner": op.miner}
		if p != nil {
			fields["pid"] = p.pid()
		}
		switch {
		case op.act == "kill" && p != nil && p.alive():
			p.kill()
			c.killed[op.miner] = true
			c.tally.killed(now, op.miner)
			s.rep.event(now, "killed", fmt.Sprintf("chaos: killed miner %d (SIGKILL, pid %d)", op.miner, p.pid()), fields)
		case op.act == "restart" && c.killed[op.miner]:
			delete(c.killed, op.miner)
			if err := s.startMiner(op.miner, false); err != nil {
				return err
			}
		case op.act == "stop" && p != nil && p.alive():
			p.pause(true)
			c.frozen[op.miner] = true
			c.tally.stopped(now, op.miner)
			s.rep.event(now, "frozen", fmt.Sprintf("chaos: froze miner %d (SIGSTOP, pid %d)", op.miner, p.pid()), fields)
		case op.act == "cont" && c.frozen[op.miner]:
			delete(c.frozen, op.miner)
			p.pause(false)
			c.tally.continued(now, op.miner)
			s.rep.event(now, "continued", fmt.Sprintf("chaos: miner %d continues (SIGCONT)", op.miner), fields)
		}
	}
	return nil
}

// pause freezes (SIGSTOP) or continues (SIGCONT) the child's process group;
// neither is an exit.
func (c *child) pause(stop bool) {
	sig := syscall.SIGCONT
	if stop {
		sig = syscall.SIGSTOP
	}
	_ = syscall.Kill(-c.pid(), sig)
}
