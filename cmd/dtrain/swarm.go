package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/netx/netns"
	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/torch"
)

func swarmCommand() *cli.Command {
	return &cli.Command{
		Name:  "swarm",
		Usage: "demo: a bootstrap node and a few miners on this machine train a small GPT-2 together",
		Description: "Starts `dtrain bootstrap` and --miners `dtrain miner` processes on 127.0.0.1, which train the\n" +
			"default tiny GPT-2 on the built-in corpus (Go sources) and average every epoch. Prints one line per\n" +
			"swarm epoch and a summary. Unless --no-churn, a miner joins late (at --late-after) and catches up\n" +
			"from its peers, and miner 2 is killed (at --kill-after) and restarted. Ctrl-C stops every process.\n\n" +
			"--chaos is issue 14's chaos test (4 miners unless --miners; no scripted churn): a random miner is killed\n" +
			"(SIGKILL) every 30-60 s and restarted with its out dir 3-15 s later, twice two at once, and once one is\n" +
			"frozen (SIGSTOP) for 40 s instead. --seed picks the plan, which is printed first (the same seed gives the\n" +
			"same plan, not the same timing). At the end it prints these figures from the miners' events (metrics.jsonl):\n" +
			"  averaged epochs: of the swarm epochs that ended (some miner reported an \"epoch\" event for it), those where\n" +
			"    every miner that finished it without dropping it applied a group mean of 2 or more updates\n" +
			"    (contributors >= 2) with one param_hash X, and every miner that dropped it then took X (loaded it, or\n" +
			"    started the next epoch from it, or caught up past it) (target >= 90%);\n" +
			"  solo forks: (miner, epoch) where the miner applied its own update alone (contributors < 2, not dropped)\n" +
			"    while another miner also finished that epoch (target 0);\n" +
			"  averaged replaced by dropped: state loads by a miner whose last epoch before it was averaged (result X),\n" +
			"    where the loaded state, traced back by start_hash to the next epoch, is not X but a dropped update's\n" +
			"    (its start state relabelled) (target 0);\n" +
			"  kills, restarts, freezes, state loads (diverged: loads of the epoch the miner was at), and the longest a\n" +
			"    miner process ran (not frozen) without finishing an epoch, from its start or its last epoch to its next,\n" +
			"    its end or the end of the run.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "miners", Value: 3, Usage: "miners at the start, 2 to 8 (the late joiner comes on top; 4 with --chaos)"},
			&cli.StringFlag{Name: "mode", Value: "diloco", Usage: "diloco or gradients"},
			&cli.Float64Flag{Name: "minutes", Value: 3, Usage: "how long the swarm trains"},
			&cli.StringFlag{Name: "dir", Usage: "work directory for the configuration, the miners' state and the logs (default: a new temporary one)"},
			&cli.StringFlag{Name: "config", Usage: "miner configuration to start from (default: the built-in tiny demo model)"},
			&cli.BoolFlag{Name: "no-churn", Usage: "no late joiner and no killed miner"},
			&cli.StringFlag{Name: "late-after", Value: "0.33", Usage: "when the late miner joins: a fraction of --minutes or a duration (90s)"},
			&cli.StringFlag{Name: "kill-after", Value: "0.5", Usage: "when miner 2 is killed (and restarted 5 s later): a fraction of --minutes or a duration"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON lines (one object per event) instead of text"},
			&cli.BoolFlag{Name: "chaos", Usage: "chaos test: kill, restart and freeze random miners throughout the run, then print how the swarm held up (see above)"},
			&cli.Uint64Flag{Name: "seed", Usage: "--chaos: the plan's seed, printed so that a plan can be repeated; --cheat, --validators: the run's seed (model init, data order) and the cheat's", DefaultText: "with --chaos a random one, else the config's seed"},
			&cli.IntFlag{Name: "validators", Usage: "validators to run beside the miners, 0 to 4 (trusted by the run: swarm.validators); each prints every epoch's weights", DefaultText: "0, or 1 with --cheat"},
			&cli.StringFlag{Name: "cheat", Usage: "the last miner cheats, from --cheat-from on: " + strings.Join(swarmCheats(), ", ") + " (no churn)"},
			&cli.Uint64Flag{Name: "cheat-from", Value: 1, Usage: "--cheat: the first epoch the cheater cheats in"},
			&cli.StringFlag{Name: "aggregation", Usage: "how each span's owner combines the miners' values (swarm.aggregation): " + strings.Join(allreduce.Aggregations, ", "), DefaultText: "the config's, mean"},
			&cli.StringFlag{Name: "links", Usage: "run every process in its own network namespace, linked through a bridge by a tbf-shaped link: one rate in Mbit/s per miner (e.g. 50,200,200), each way; the bootstrap node, the validators and the late joiner get the fastest (needs root, ip and tc)"},
			&cli.StringFlag{Name: "http", Usage: "with --validators: serve validator 1's dashboard (and its Prometheus metrics) on this address", DefaultText: "a free port on 127.0.0.1"},
			&cli.StringFlag{Name: "verify", Value: "auto", Usage: "the validators' verify.mode: auto (node/verify's work checks on the miners' diloco updates) or norm (the norm checks only, which need no model: for epochs of a second or less, which a work check cannot keep up with)"},
		},
		Action: runSwarm,
	}
}

// swarmOptions are the swarm's flags, checked.
type swarmOptions struct {
	miners    int
	mode      string
	duration  time.Duration
	dir       string
	config    string
	churn     bool
	lateAfter time.Duration
	killAfter time.Duration
	json      bool
	chaos     bool
	seed      uint64
	// validators run beside the miners; the last miner plays cheat (""
	// none) from epoch cheatFrom on.
	validators int
	cheat      string
	cheatFrom  uint64
	verify     string // the validators' verify.mode
	// links are the miners' link rates (--links), nil for loopback.
	links []netns.Rate
	// aggregation overrides swarm.aggregation unless empty.
	aggregation string
	// http is where validator 1 serves its dashboard ("": a free loopback
	// port).
	http string
}

// restartDelay is how long the killed miner stays down.
const restartDelay = 5 * time.Second

func parseSwarmOptions(c *cli.Context) (swarmOptions, error) {
	o := swarmOptions{miners: c.Int("miners"), mode: c.String("mode"), dir: c.String("dir"), config: c.String("config"),
		churn: !c.Bool("no-churn"), json: c.Bool("json"), aggregation: c.String("aggregation"), http: c.String("http")}
	if c.NArg() > 0 {
		return o, usageErrorf("swarm takes no arguments, got %q", c.Args().Slice())
	}
	if err := parseChaosOptions(c, &o); err != nil {
		return o, err
	}
	if err := parseValidatorOptions(c, &o); err != nil {
		return o, err
	}
	if o.miners < 2 || o.miners > 8 {
		return o, fmt.Errorf("--miners must be 2 to 8, got %d", o.miners)
	}
	if o.mode != "diloco" && o.mode != "gradients" {
		return o, fmt.Errorf("--mode must be diloco or gradients, got %q", o.mode)
	}
	minutes := c.Float64("minutes")
	if !(minutes > 0 && minutes <= 24*60) {
		return o, fmt.Errorf("--minutes must be > 0 and at most a day (1440), got %v", minutes)
	}
	o.duration = time.Duration(minutes * float64(time.Minute))
	var err error
	if o.links, err = parseLinks(c.String("links"), o.miners); err != nil {
		return o, err
	}
	if c.IsSet("http") && (o.validators == 0 || len(o.links) > 0) {
		return o, errors.New("--http serves validator 1's dashboard: it needs --validators and no --links (the validator then runs in its own network namespace)")
	}
	if !o.churn {
		return o, nil
	}
	if o.lateAfter, err = parseWhen("--late-after", c.String("late-after"), o.duration); err != nil {
		return o, err
	}
	if o.killAfter, err = parseWhen("--kill-after", c.String("kill-after"), o.duration); err != nil {
		return o, err
	}
	return o, nil
}

// parseChaosOptions reads --chaos and --seed: chaos brings its own churn,
// on 4 miners unless --miners says otherwise.
func parseChaosOptions(c *cli.Context, o *swarmOptions) error {
	o.chaos = c.Bool("chaos")
	if !o.chaos {
		if c.IsSet("seed") && c.String("cheat") == "" && c.Int("validators") == 0 {
			return errors.New("--seed is for --chaos, --cheat or --validators")
		}
		o.seed = c.Uint64("seed")
		return nil
	}
	for _, f := range []string{"late-after", "kill-after"} {
		if c.IsSet(f) {
			return fmt.Errorf("--%s does not go with --chaos, which kills and restarts miners by its own plan", f)
		}
	}
	o.churn = false
	if !c.IsSet("miners") {
		o.miners = 4
	}
	o.seed = c.Uint64("seed")
	if !c.IsSet("seed") {
		o.seed = rand.Uint64N(1_000_000)
	}
	return nil
}

// parseWhen reads a moment of the run: a fraction of total (0.5) or a
// duration (90s), which must fall inside the run.
func parseWhen(flag, s string, total time.Duration) (time.Duration, error) {
	var d time.Duration
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if !(f > 0 && f < 1) {
			return 0, fmt.Errorf("%s %s: a fraction of --minutes must be in (0, 1); a duration needs a unit (90s)", flag, s)
		}
		d = time.Duration(f * float64(total))
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("%s %q: want a fraction of --minutes (0.5) or a duration (90s)", flag, s)
	}
	if d <= 0 || d >= total {
		return 0, fmt.Errorf("%s %s: must fall inside the run (0 to %s)", flag, s, total)
	}
	return d, nil
}

// swarmConfig is the miners' configuration: --config or the built-in demo,
// made to share this machine's cores and to notice a missing peer quickly.
func swarmConfig(o swarmOptions) (config.Miner, error) {
	cfg := config.DefaultMiner()
	if o.config != "" {
		var err error
		if cfg, err = config.LoadMiner(o.config); err != nil {
			return cfg, err
		}
	} else {
		cfg.Loop.MaxSteps = 100_000 // --minutes ends the run, not the step count
		cfg.Loop.EvalTokens = 4096
		cfg.Swarm.MatchSeconds, cfg.Swarm.RoundSeconds = 5, 20
		if o.mode == "gradients" {
			cfg.Swarm.EvalEvery = 5 // an epoch is one step: evaluating each would take most of the time
		}
		if o.validators > 0 && o.mode == "diloco" {
			// A validator's work check costs about 4·verify.windows
			// one-window forward passes per audited miner whatever the
			// epoch's length: 30 steps of 16 windows keep it near a tenth of
			// the miners' compute (10 steps: 0.3), and the validator keeps
			// up with the epochs on this machine's cores.
			cfg.Swarm.InnerSteps = 30
		}
	}
	cfg.Threads = 1
	cfg.Swarm.Mode = o.mode
	if o.aggregation != "" {
		cfg.Swarm.Aggregation = o.aggregation
	}
	if (o.cheat != "" || o.validators > 0) && o.seed != 0 {
		cfg.Seed = o.seed // another seed, other lanes and another start
	}
	cfg.Net.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.Net.Announce, cfg.Net.NAT = nil, false
	// The swarm reads each miner's events from its out dir; miners on one
	// host cannot share a Prometheus port.
	cfg.Metrics.JSONL, cfg.Metrics.Addr = minerEvents, ""
	return cfg, cfg.Validate()
}

// minerEvents is the file in a miner's out dir that the swarm reads its
// events from.
const minerEvents = "metrics.jsonl"

// runSwarm starts the swarm, shows it until the time is up or Ctrl-C, and
// stops every process it started on every way out.
func runSwarm(c *cli.Context) error {
	o, err := parseSwarmOptions(c)
	if err != nil {
		return err
	}
	cfg, err := swarmConfig(o)
	if err != nil {
		return fmt.Errorf("miner configuration: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary to run the miners: %w", err)
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "dtrain-swarm-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	if o.validators > 0 {
		if cfg.Swarm.Validators, err = validatorKeys(dir, o.validators); err != nil {
			return err
		}
		if err := writeValidatorConfig(filepath.Join(dir, "validator.toml"), cfg, o.verify); err != nil {
			return err
		}
	}
	cfgPath := filepath.Join(dir, "miner.toml")
	if err := writeMinerConfig(cfgPath, cfg); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &swarm{opts: o, exe: exe, dir: dir, cfgPath: cfgPath, lines: make(chan childLine, 256), quit: make(chan struct{}),
		children: map[int]*child{}, tails: map[int]*eventTail{}, vtails: map[int]*eventTail{}}
	s.rep = newSwarmReport(c.App.Writer, o.json, time.Now(), tokensPerEpoch(cfg, o.miners))
	s.rep.logs = filepath.Join(dir, "miner-N.log")
	if o.chaos {
		s.chaos = newChaosRun(o.seed, o.miners, o.duration, s.rep.start)
	}
	defer s.shutdown()
	if o.validators > 0 && len(o.links) == 0 {
		if s.dash, err = dashAddr(o.http); err != nil {
			return err
		}
	}
	s.header(cfg)
	why, err := s.run(ctx)
	if err != nil {
		why = "error"
	}
	if s.chaos != nil {
		s.chaos.tally.finish(time.Now())
	}
	stop() // a second Ctrl-C now kills this process, and the kernel its children (Pdeathsig)
	s.shutdown()
	s.rep.summary(time.Now(), why)
	if s.chaos != nil {
		s.rep.printChaos(s.chaos.tally.figures(s.chaos.seed))
	}
	s.plot()
	return err
}

// plot draws the run's losses and weights into summary.png in the work
// dir (dtrain plot); a run too short to have any says so.
func (s *swarm) plot() {
	out := filepath.Join(s.dir, "summary.png")
	runs, weights, err := readPlotLogs(s.dir)
	if err == nil {
		err = drawRunPlot(runs, weights, out)
	}
	switch {
	case s.opts.json: // the summary (or chaos) object stays the last line
	case err != nil:
		fmt.Fprintf(s.rep.w, "no plot: %v\n", err)
	default:
		fmt.Fprintf(s.rep.w, "plot: %s (%s)\n", out, plotSummary(runs, weights))
	}
}

// dashAddr is where validator 1 serves its dashboard: addr, or a loopback
// port that is free now.
func dashAddr(addr string) (string, error) {
	if addr != "" {
		return addr, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("a port for the dashboard: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// dashURL is the dashboard's URL, "" when there is none.
func dashURL(addr string) string {
	if addr == "" {
		return ""
	}
	return "http://" + addr + "/"
}

func writeMinerConfig(path string, cfg config.Miner) error {
	text, err := config.MarshalMiner(cfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append([]byte("# written by `dtrain swarm` for its miners\n"), text...), 0o644); err != nil {
		return err
	}
	if _, err := config.LoadMiner(path); err != nil { // what the miners will read
		return fmt.Errorf("written miner configuration: %w", err)
	}
	return nil
}

// tokensPerEpoch is what one of miners trains in an epoch: in gradients
// mode its share of the swarm's target batch, if they train alike.
func tokensPerEpoch(cfg config.Miner, miners int) int64 {
	if cfg.Swarm.Mode == "diloco" {
		return int64(cfg.Swarm.InnerSteps) * int64(cfg.Loop.BatchTokens)
	}
	return int64(cfg.Swarm.TargetBatchSize) * int64(cfg.Data.SeqLen) / int64(max(miners, 1))
}

func (s *swarm) header(cfg config.Miner) {
	o, m := s.opts, cfg.Model
	var params int64
	if m.Init == "" {
		params = torch.NumParams(torch.NewConfig(m.NLayer, m.NHead, m.NEmbd, m.NPositions, m.VocabSize))
	}
	data := cfg.Data.Train
	if data == "" {
		data = "builtin:gosrc"
	}
	if o.json {
		s.rep.emit(map[string]any{"event": "swarm", "miners": o.miners, "mode": o.mode, "seconds": o.duration.Seconds(),
			"params": params, "n_layer": m.NLayer, "n_embd": m.NEmbd, "data": data, "dir": s.dir,
			"tokens_per_epoch": tokensPerEpoch(cfg, o.miners), "churn": o.churn, "chaos": o.chaos,
			"validators": o.validators, "dashboard": dashURL(s.dash), "cheat": o.cheat, "cheater": o.cheater(), "cheat_from": o.cheatFrom, "links_mbit": linksMbit(o), "aggregation": cfg.Swarm.Aggregation})
		if s.chaos != nil {
			s.rep.emit(s.chaos.planJSON())
		}
		return
	}
	w := s.rep.w
	fmt.Fprintf(w, "dtrain swarm: %d miners and a bootstrap node %s (QUIC), mode %s, for %s (Ctrl-C stops early)\n",
		o.miners, linksNote(o), o.mode, o.duration.Round(time.Second))
	model := "GPT-2 from " + m.Init
	if m.Init == "" {
		model = fmt.Sprintf("GPT-2, %d layers × %d wide, %.2fM parameters", m.NLayer, m.NEmbd, float64(params)/1e6)
	}
	per := fmt.Sprintf("one AdamW step on the averaged gradients of %d sequences", cfg.Swarm.TargetBatchSize)
	if o.mode == "diloco" {
		per = fmt.Sprintf("%d local steps, then the update averaged", cfg.Swarm.InnerSteps)
	}
	fmt.Fprintf(w, "model: %s, on %s; an epoch = %s, %s tokens per miner\n", model, data, per, fmtCount(tokensPerEpoch(cfg, o.miners)))
	if cfg.Swarm.Aggregation != "mean" {
		fmt.Fprintf(w, "aggregation: %s at each span's owner\n", cfg.Swarm.Aggregation)
	}
	if o.churn {
		fmt.Fprintf(w, "churn: miner %d joins at %s; miner 2 is killed at %s and restarted %s later\n",
			o.miners+1, fmtClock(o.lateAfter), fmtClock(o.killAfter), restartDelay)
	}
	if o.validators > 0 {
		fmt.Fprintf(w, "validators: %d beside the miners, trusted by the run (swarm.validators); each prints its weights every epoch\n", o.validators)
	}
	if s.dash != "" {
		fmt.Fprintf(w, "dashboard: http://%s/ (validator 1: the miners, the loss curve, rounds and events, live)\n", s.dash)
	}
	if o.cheat != "" {
		fmt.Fprintf(w, "cheat: miner %d plays %q from epoch %d on%s\n", o.cheater(), o.cheat, o.cheatFrom, copyNote(o))
	}
	if s.chaos != nil {
		fmt.Fprintf(w, "chaos (seed %d): a random miner killed every %.0f-%.0f s and restarted %.0f-%.0f s later, twice two at once, "+
			"once one frozen (SIGSTOP) for %.0f s instead:\n", s.chaos.seed, chaosEveryMin.Seconds(), chaosEveryMax.Seconds(),
			chaosDownMin.Seconds(), chaosDownMax.Seconds(), chaosFreeze.Seconds())
		for _, l := range describeChaos(s.chaos.plan) {
			fmt.Fprintln(w, l)
		}
	}
	fmt.Fprintf(w, "work dir: %s (miner.toml, bootstrap.log, miner-N.log, miner-N/)\n", s.dir)
}

// errAllExited ends a run whose miners all died on their own.
var errAllExited = errors.New("every miner exited; see their logs")

// run starts the processes and reports on them until the time is up.
func (s *swarm) run(ctx context.Context) (string, error) {
	if err := s.buildLinks(ctx); err != nil {
		return "", err
	}
	if err := s.startBootstrap(ctx); err != nil {
		return "", err
	}
	for v := 1; v <= s.opts.validators; v++ {
		if err := s.startValidator(v); err != nil {
			return "", err
		}
	}
	for i := 1; i <= s.opts.miners; i++ {
		if err := s.startMiner(i, false); err != nil {
			return "", err
		}
	}
	end := time.NewTimer(s.opts.duration)
	defer end.Stop()
	var late, kill, restart, chaos <-chan time.Time
	if s.opts.churn {
		late, kill = time.After(s.opts.lateAfter), time.After(s.opts.killAfter)
	}
	if s.chaos != nil {
		chaos = s.chaos.due(time.Since(s.rep.start))
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	poll := time.NewTicker(eventPoll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return "Ctrl-C", nil
		case <-end.C:
			return "time is up", nil
		case <-late:
			late = nil
			if err := s.startMiner(s.opts.miners+1, true); err != nil {
				return "", err
			}
		case <-kill:
			kill = nil
			s.poll() // what it reported before it dies
			if c := s.children[2]; c != nil && c.alive() {
				c.kill()
				s.rep.event(time.Now(), "killed", fmt.Sprintf("killed miner 2 (SIGKILL, pid %d); restarting it in %s", c.pid(), restartDelay),
					map[string]any{"miner": 2, "pid": c.pid()})
				restart = time.After(restartDelay)
			}
		case <-restart:
			restart = nil
			if err := s.startMiner(2, false); err != nil {
				return "", err
			}
		case <-chaos:
			s.poll()
			if err := s.chaosStep(); err != nil {
				return "", err
			}
			chaos = s.chaos.due(time.Since(s.rep.start))
		case l := <-s.lines:
			s.handle(l)
			if s.allExited() && (s.chaos == nil || !s.chaos.down()) {
				return "", errAllExited
			}
		case <-poll.C:
			s.poll()
		case <-tick.C:
			s.rep.flush(time.Now(), false)
		}
	}
}
