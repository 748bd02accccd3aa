package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/netx"
)

const benchDiscoveryRun = "bench-discovery"

func benchDiscoveryCommand() *cli.Command {
	return &cli.Command{
		Name:  "discovery",
		Usage: "how long N libp2p hosts, spread over processes on loopback, take to find and connect to every other member of one run",
		Description: `Starts --bootstraps bootstrap hosts in this process and --procs child processes
that start --peers hosts between them, one after another in each process. Every host
bootstraps from all bootstrap hosts and joins one run (DHT advertisement and lookups,
identify, member exchange), as a miner does. The report gives the time from the first
start to the last join, and from the last join until every host is connected to all the
others (a full mesh: each host's Run.Peers holds the other N-1).`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "peers", Value: 64, Usage: "hosts in all"},
			&cli.IntFlag{Name: "procs", Value: 4, Usage: "child processes the hosts are spread over"},
			&cli.IntFlag{Name: "bootstraps", Value: 1, Usage: "bootstrap hosts (in this process); every host is given all of them"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up when the mesh has not formed this long after the last join"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			&cli.IntFlag{Name: "hosts", Hidden: true, Usage: "child mode: hosts in this process"},
			&cli.StringFlag{Name: "bootstrap", Hidden: true, Usage: "child mode: the bootstrap hosts' addresses, comma separated"},
		},
		Action: benchDiscovery,
	}
}

// discoveryChildEvent is one line a child prints: when its hosts had all
// joined, then when all of them were connected to every other member.
type discoveryChildEvent struct {
	Joined int64  `json:"joined_unix_ns,omitempty"`
	Formed int64  `json:"formed_unix_ns,omitempty"`
	Peers  int    `json:"min_peers,omitempty"` // the fewest members a host of the child saw, when it gave up
	Failed string `json:"error,omitempty"`
}

type discoveryReport struct {
	Peers       int     `json:"peers"`
	Procs       int     `json:"procs"`
	Bootstraps  int     `json:"bootstraps"`
	JoinSeconds float64 `json:"start_to_last_join_s"`
	FormSeconds float64 `json:"last_join_to_mesh_s"`
}

func benchDiscovery(c *cli.Context) error {
	if c.Int("hosts") > 0 {
		return runDiscoveryChild(c.Context, c.Int("hosts"), c.Int("peers"), strings.Split(c.String("bootstrap"), ","), c.Duration("timeout"))
	}
	n, procs, boots := c.Int("peers"), c.Int("procs"), c.Int("bootstraps")
	switch {
	case n < 2:
		return cli.Exit("bench discovery: --peers must be at least 2", 2)
	case procs < 1 || procs > n:
		return cli.Exit("bench discovery: --procs must be between 1 and --peers", 2)
	case boots < 1 || boots > 16:
		return cli.Exit("bench discovery: --bootstraps must be between 1 and 16", 2)
	case c.Duration("timeout") <= 0:
		return cli.Exit("bench discovery: --timeout must be positive", 2)
	}
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	// The bootstrap hosts close before the children: closing them after
	// them would log libp2p's warnings about their closed connections.
	var bootNodes []*netx.Node
	closeBoots := func() {
		for _, b := range bootNodes {
			_ = b.Close()
		}
		bootNodes = nil
	}
	defer closeBoots()
	var addrs []string
	for range boots {
		b, err := discoveryNode(ctx, addrs...)
		if err != nil {
			return err
		}
		bootNodes = append(bootNodes, b)
		addrs = append(addrs, b.Addrs()...)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	start := time.Now()
	var children []*allReduceChild
	failed := true // until every child reported: then stop the others at once
	defer func() {
		for _, ch := range children {
			_ = ch.stdin.Close()
			if failed {
				_ = ch.cmd.Process.Kill()
			}
			_ = ch.cmd.Wait()
		}
	}()
	for i := range procs {
		k := n / procs // the first n%procs processes take one more
		if i < n%procs {
			k++
		}
		args := []string{"--log-level", childLogLevel(c), "bench", "discovery", "--hosts", strconv.Itoa(k), "--peers", strconv.Itoa(n),
			"--bootstrap", strings.Join(addrs, ","), "--timeout", c.Duration("timeout").String()}
		ch, err := startBenchChild(ctx, nil, i, exe, args)
		if err != nil {
			return fmt.Errorf("start process %d: %w", i, err)
		}
		children = append(children, ch)
	}
	rep, err := collectDiscovery(children, start)
	closeBoots()
	if err != nil {
		return err
	}
	failed = false
	rep.Peers, rep.Procs, rep.Bootstraps = n, procs, boots
	return printDiscoveryReport(c.App.Writer, c.Bool("json"), rep)
}

// collectDiscovery reads every child's two events and reports the last
// join and the last mesh. It returns at the first child's failure.
func collectDiscovery(children []*allReduceChild, start time.Time) (discoveryReport, error) {
	var rep discoveryReport
	joined, formed := make([]int64, len(children)), make([]int64, len(children))
	errs := make(chan error, len(children))
	for i, ch := range children {
		go func() {
			for _, into := range []*int64{&joined[i], &formed[i]} {
				var ev discoveryChildEvent
				if err := ch.readJSON(&ev); err != nil {
					errs <- fmt.Errorf("process %d: %w", i, err)
					return
				}
				if ev.Failed != "" {
					errs <- fmt.Errorf("process %d: %s (fewest members seen by one host: %d)", i, ev.Failed, ev.Peers)
					return
				}
				*into = max(ev.Joined, ev.Formed)
			}
			errs <- nil
		}()
	}
	for range children {
		if err := <-errs; err != nil {
			return rep, err
		}
	}
	lastJoin, lastForm := time.Unix(0, slices.Max(joined)), time.Unix(0, slices.Max(formed))
	rep.JoinSeconds = lastJoin.Sub(start).Seconds()
	rep.FormSeconds = max(0, lastForm.Sub(lastJoin).Seconds())
	return rep, nil
}

func printDiscoveryReport(w io.Writer, asJSON bool, rep discoveryReport) error {
	if asJSON {
		return json.NewEncoder(w).Encode(rep)
	}
	fmt.Fprintf(w, "%d hosts in %d processes on loopback, %d bootstrap host(s)\n\n", rep.Peers, rep.Procs, rep.Bootstraps)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "start to last join\tlast join to full mesh\t")
	fmt.Fprintf(tw, "%.1fs\t%.1fs\t\n", rep.JoinSeconds, rep.FormSeconds)
	return tw.Flush()
}

// discoveryNode is one host of the benchmark: QUIC on loopback, a DHT
// server (the hosts are reachable), no NAT services.
func discoveryNode(ctx context.Context, bootstrap ...string) (*netx.Node, error) {
	cfg := netx.DefaultConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.DHTMode = netx.DHTServer
	cfg.EnableNAT = false
	cfg.Bootstrap = bootstrap
	return netx.New(ctx, cfg)
}

// runDiscoveryChild starts hosts one after another, each joining the run,
// reports when all have joined, then when each is connected to the other
// total-1 members, and keeps them up until stdin closes.
func runDiscoveryChild(ctx context.Context, hosts, total int, bootstrap []string, timeout time.Duration) error {
	out := json.NewEncoder(os.Stdout)
	fail := func(err error, peers int) error {
		_ = out.Encode(discoveryChildEvent{Failed: err.Error(), Peers: peers})
		return err
	}
	var runs []*netx.Run
	defer func() {
		for _, r := range runs {
			_ = r.Close()
		}
	}()
	for range hosts {
		nd, err := discoveryNode(ctx, bootstrap...)
		if err != nil {
			return fail(fmt.Errorf("start host: %w", err), 0)
		}
		defer nd.Close()
		r, err := nd.JoinRun(ctx, benchDiscoveryRun)
		if err != nil {
			return fail(fmt.Errorf("join run: %w", err), 0)
		}
		runs = append(runs, r)
	}
	if err := out.Encode(discoveryChildEvent{Joined: time.Now().UnixNano()}); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		fewest := total
		for _, r := range runs {
			fewest = min(fewest, len(r.Peers()))
		}
		if fewest >= total-1 {
			if err := out.Encode(discoveryChildEvent{Formed: time.Now().UnixNano()}); err != nil {
				return err
			}
			break
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("no full mesh %v after this process's last join", timeout), fewest)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}
