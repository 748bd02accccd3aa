package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dtrain-dev/dtrain/netx/netns"
)

// childLine is one line a swarm process wrote, or (exited) its end.
type childLine struct {
	who    int // 0: the bootstrap node; i ≥ 1: miner i
	gen    int // 1 for the first start, +1 per restart
	stdout bool
	text   string
	exited bool
	err    error // the exit status when exited
}

// child is a process of the swarm: this binary run as `dtrain bootstrap` or
// `dtrain miner`, in its own process group so that a Ctrl-C on the terminal
// reaches only the parent, which then stops every child in order.
type child struct {
	who, gen int
	cmd      *exec.Cmd
	done     chan struct{} // closed once the process is reaped
	mu       sync.Mutex
	stopping bool // a signal from us, so its exit is no surprise
}

// startChild runs exe with args, appends both output streams to logPath and
// sends every line (then the exit) to lines until quit is closed.
func startChild(who, gen int, exe string, args []string, logPath string, lines chan<- childLine, quit <-chan struct{}) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	// Pdeathsig: should the parent die without cleaning up (SIGKILL), the
	// kernel kills the children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	errR, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	fmt.Fprintf(logf, "# %s: %s %q\n", time.Now().Format(time.RFC3339), exe, args)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", exe, err)
	}
	c := &child{who: who, gen: gen, cmd: cmd, done: make(chan struct{})}
	send := func(l childLine) {
		select {
		case lines <- l:
		case <-quit:
		}
	}
	var mu sync.Mutex // one line at a time into the log
	var wg sync.WaitGroup
	for _, s := range []struct {
		r      io.Reader
		stdout bool
	}{{outR, true}, {errR, false}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(s.r)
			sc.Buffer(make([]byte, 64<<10), 4<<20)
			for sc.Scan() {
				mu.Lock()
				logf.Write(append(sc.Bytes(), '\n'))
				mu.Unlock()
				send(childLine{who: who, gen: gen, stdout: s.stdout, text: sc.Text()})
			}
			io.Copy(io.Discard, s.r) // a line over the limit: keep the pipe flowing
		}()
	}
	go func() {
		wg.Wait()
		err := cmd.Wait()
		logf.Close()
		close(c.done)
		send(childLine{who: who, gen: gen, exited: true, err: err})
	}()
	return c, nil
}

// pid is the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// signal sends sig to the child's process group, marking the exit expected.
func (c *child) signal(sig syscall.Signal) {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	// ESRCH: already gone, which is what we want.
	_ = syscall.Kill(-c.pid(), sig)
}

// expected reports whether the child's exit was asked for.
func (c *child) expected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

// stop asks the child to stop (SIGINT, as Ctrl-C would), kills it after
// grace, and returns once it is reaped. Someone must keep reading the lines
// channel meanwhile, or the child's output pipes fill and it never ends.
func (c *child) stop(grace time.Duration) error {
	select {
	case <-c.done:
		return nil
	default:
	}
	c.signal(syscall.SIGINT)
	c.pause(false) // a frozen miner (--chaos) acts on SIGINT once continued
	select {
	case <-c.done:
		return nil
	case <-time.After(grace):
	}
	c.signal(syscall.SIGKILL)
	select {
	case <-c.done:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("still running 10 s after SIGKILL")
	}
}

// kill ends the child at once, like a crash or a pulled plug; its exit
// arrives on the lines channel like any other.
func (c *child) kill() { c.signal(syscall.SIGKILL) }

// alive reports whether the process has not been reaped yet.
func (c *child) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// swarm is a running demo: its processes and its report.
type swarm struct {
	opts     swarmOptions
	exe      string
	dir      string
	cfgPath  string
	boot     string // the bootstrap node's QUIC multiaddr
	rep      *swarmReport
	lines    chan childLine
	quit     chan struct{}      // closed at the very end: readers stop sending
	children map[int]*child     // 0: bootstrap; i: miner i, its latest process
	tails    map[int]*eventTail // miner i's metrics.jsonl, across its processes
	vtails   map[int]*eventTail // validator v's weights.jsonl
	chaos    *chaosRun          // nil without --chaos
	all      []*child           // every process started, for shutdown
	topo     *netns.Topology    // --links: every process's host; nil on loopback
	dash     string             // where validator 1 serves its dashboard; "" for none
	down     bool
}

// eventPoll is how often the swarm reads the miners' metrics.jsonl.
const eventPoll = 200 * time.Millisecond

// minerDir is miner i's out dir; its events go to metrics.jsonl there
// (swarmConfig sets metrics.jsonl).
func (s *swarm) minerDir(i int) string { return filepath.Join(s.dir, fmt.Sprintf("miner-%d", i)) }

// startBootstrap runs `dtrain bootstrap` and waits for its address.
func (s *swarm) startBootstrap(ctx context.Context) error {
	args := []string{"--log-level", "info", "bootstrap", "--listen", s.listen(0),
		"--key", filepath.Join(s.dir, "bootstrap.key"), "--relay-service=false"}
	c, err := s.start(0, 1, args, filepath.Join(s.dir, "bootstrap.log"))
	if err != nil {
		return err
	}
	timeout := time.After(30 * time.Second)
	for s.boot == "" {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return fmt.Errorf("bootstrap node printed no address in 30 s; see %s", filepath.Join(s.dir, "bootstrap.log"))
		case l := <-s.lines:
			if l.who != 0 {
				s.handle(l)
			} else if l.exited {
				return fmt.Errorf("bootstrap node exited (%v); see %s", l.err, filepath.Join(s.dir, "bootstrap.log"))
			} else if l.stdout && strings.Contains(l.text, "/p2p/") {
				s.boot = strings.TrimSpace(l.text)
			}
		}
	}
	s.rep.event(time.Now(), "process", fmt.Sprintf("bootstrap node up (pid %d) at %s", c.pid(), s.boot),
		map[string]any{"role": "bootstrap", "pid": c.pid(), "addr": s.boot})
	return nil
}

// startMiner starts miner i: a first start, a late joiner or a restart
// (the same out dir and identity as before).
func (s *swarm) startMiner(i int, late bool) error {
	gen := 1
	if old := s.children[i]; old != nil {
		gen = old.gen + 1
	}
	args := []string{"--log-level", "info", "--threads", "1", "miner", "--config", s.cfgPath,
		"--listen", s.listen(i), "--bootstrap", s.boot,
		"--out-dir", s.minerDir(i), "--mode", s.opts.mode}
	args = append(args, s.minerCheatArgs(i)...)
	if s.topo != nil { // the link's rate is known: keep its queue empty (net.upload_limit)
		args = append(args, "--set", "net.upload_limit="+netns.Rate(float64(s.topo.Rate(s.host(i)))*paceShare).String())
	}
	logPath := filepath.Join(s.dir, fmt.Sprintf("miner-%d.log", i))
	if s.tails[i] == nil {
		s.tails[i] = newEventTail(filepath.Join(s.minerDir(i), minerEvents))
	}
	c, err := s.start(i, gen, args, logPath)
	if err != nil {
		return err
	}
	now := time.Now()
	s.rep.started(i, c.pid(), late)
	s.rep.miner(i).cheat = cheatOf(s.opts, i)
	if s.chaos != nil {
		s.chaos.tally.started(now, i)
	}
	fields := map[string]any{"role": "miner", "miner": i, "pid": c.pid(), "log": logPath, "late": late, "start": gen}
	switch {
	case gen > 1:
		s.rep.event(now, "restarted", fmt.Sprintf("restarted miner %d (pid %d), same identity and out dir", i, c.pid()), fields)
	case late:
		s.rep.event(now, "joined", fmt.Sprintf("miner %d joins late (pid %d); it should catch up from its peers", i, c.pid()), fields)
	case s.opts.json:
		s.rep.event(now, "process", "", fields)
	case i == s.opts.miners:
		s.rep.event(now, "process", fmt.Sprintf("started miners 1-%d (pids %s); the first epoch takes a while (data, peers)",
			i, s.minerPIDs()), fields)
	}
	return nil
}

func (s *swarm) minerPIDs() string {
	var pids []int
	for i := 1; i <= s.opts.miners; i++ {
		if c := s.children[i]; c != nil {
			pids = append(pids, c.pid())
		}
	}
	return joinInts(pids)
}

func (s *swarm) start(who, gen int, args []string, logPath string) (*child, error) {
	exe := s.exe
	if who > 0 && s.opts.validators > 0 {
		// One machine stands in for many: a real validator has its own.
		// Miners run at a lower priority than the validators here (nice
		// execs the miner, so every thread it starts inherits it), so that
		// a validator's audits, a tenth of the miners' compute, get the
		// cores when they need them rather than a fifth of one.
		exe, args = "nice", append([]string{"-n", strconv.Itoa(minerNice), s.exe}, args...)
	}
	if s.topo != nil {
		// ip execs the program in place: the child is still the process
		// the swarm signals.
		exe, args = "ip", append([]string{"netns", "exec", s.topo.Namespace(s.host(who)), exe}, args...)
	}
	c, err := startChild(who, gen, exe, args, logPath, s.lines, s.quit)
	if err != nil {
		return nil, err
	}
	s.children[who] = c
	s.all = append(s.all, c)
	return c, nil
}

// minerNice is the nice value of the miners of a swarm with validators.
const minerNice = 5

// handle passes the exit of the current process of a miner to the
// report, after the events it wrote; what the processes print goes to
// their logs only.
func (s *swarm) handle(l childLine) {
	now := time.Now()
	if l.who < 0 {
		if c := s.children[l.who]; l.exited && c != nil && !c.expected() {
			s.pollValidator(now, -l.who)
			s.rep.event(now, "exited", fmt.Sprintf("validator %d exited (%v); see its log", -l.who, l.err),
				map[string]any{"role": "validator", "validator": -l.who, "status": fmt.Sprint(l.err)})
		}
		return
	}
	if l.who == 0 {
		if l.exited && !s.children[0].expected() {
			s.rep.event(now, "exited", fmt.Sprintf("the bootstrap node exited (%v); running miners keep their peers", l.err),
				map[string]any{"role": "bootstrap", "status": fmt.Sprint(l.err)})
		}
		return
	}
	c := s.children[l.who]
	if l.exited && c != nil && c.gen == l.gen {
		s.pollMiner(now, l.who)
		s.rep.exited(now, l.who, l.err, c.expected())
		if s.chaos != nil {
			s.chaos.tally.ended(now, l.who)
		}
	}
}

// poll reads the events every miner has written since the last poll.
func (s *swarm) poll() {
	now := time.Now()
	for _, i := range slices.Sorted(maps.Keys(s.tails)) {
		s.pollMiner(now, i)
	}
	for _, v := range slices.Sorted(maps.Keys(s.vtails)) {
		s.pollValidator(now, v)
	}
}

// pollValidator passes validator v's new weights to the report.
func (s *swarm) pollValidator(now time.Time, v int) {
	lines, err := s.vtails[v].read()
	if err != nil {
		s.rep.event(now, "error", fmt.Sprintf("validator %d's weights: %v", v, err), map[string]any{"validator": v, "error": err.Error()})
		return
	}
	for _, text := range lines {
		s.rep.weights(now, v, text)
	}
}

// pollMiner passes miner i's new events to the report and the chaos tally.
func (s *swarm) pollMiner(now time.Time, i int) {
	lines, err := s.tails[i].read()
	if err != nil {
		s.rep.event(now, "error", fmt.Sprintf("miner %d's events: %v", i, err), map[string]any{"miner": i, "error": err.Error()})
		return
	}
	for _, text := range lines {
		s.rep.line(now, i, text)
		if s.chaos != nil {
			s.chaos.tally.line(now, i, text)
		}
	}
}

// allExited: no miner is running any more.
func (s *swarm) allExited() bool {
	for who, c := range s.children {
		if who > 0 && c.alive() {
			return false
		}
	}
	return true
}

// shutdown stops the miners, then the bootstrap node, reading their output
// meanwhile; it runs once, however the run ended.
func (s *swarm) shutdown() {
	if s.down {
		return
	}
	s.down = true
	defer close(s.quit)
	if s.topo != nil {
		// After the processes stopped (deferred calls run last first):
		// Close kills what is left in the namespaces and removes them.
		defer func() {
			if err := s.topo.Close(); err != nil {
				s.rep.event(time.Now(), "links", fmt.Sprintf("removing the network namespaces: %v", err), map[string]any{"error": err.Error()})
			}
		}()
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		var wg sync.WaitGroup
		for _, c := range s.all {
			if c.who == 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.stop(5 * time.Second)
			}()
		}
		wg.Wait()
		if b := s.children[0]; b != nil {
			b.stop(5 * time.Second)
		}
	}()
	if n := s.running(); n > 0 {
		s.rep.event(time.Now(), "stopping", fmt.Sprintf("stopping %d processes (Ctrl-C to each; killed after 5 s)", n), map[string]any{"processes": n})
	}
	tick := time.NewTicker(eventPoll)
	defer tick.Stop()
	for {
		select {
		case l := <-s.lines:
			s.handle(l)
		case <-tick.C:
			s.poll()
		case <-stopped:
			s.poll()
			return
		}
	}
}

func (s *swarm) running() int {
	n := 0
	for _, c := range s.all {
		if c.alive() {
			n++
		}
	}
	return n
}
