package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/netx/netns"
	"github.com/dtrain-dev/dtrain/node/state"
)

const (
	benchStateProto = protocol.ID("/dtrain/bench/state/1.0.0")
	benchStateProbe = protocol.ID("/dtrain/bench/state-probe/1.0.0")
)

func benchStateCommand() *cli.Command {
	return &cli.Command{
		Name:  "state",
		Usage: "state sync: a joiner fetching a state from N donor processes, against one raw stream from one donor",
		Description: `Starts one joiner and --donors donor processes (each in its own network namespace
with --netns), all offering the same --mb MiB state. Each timed iteration the joiner
downloads the state once as one plain netx probe stream from the first donor (the
baseline), then fetches it with state.Fetch (manifest, chunks from every donor in
parallel, each chunk and the whole checked) from one donor and from all of them.
Under --netns the bound is the joiner's downlink: size / --rate.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "donors", Value: 3, Usage: "donor processes"},
			&cli.Float64Flag{Name: "mb", Value: 100, Usage: "state size in MiB"},
			&cli.BoolFlag{Name: "netns", Usage: "run each process in its own network namespace behind a shaped bridge (needs root)"},
			&cli.StringFlag{Name: "rate", Value: "200Mbit", Usage: "--netns: every link's rate, each way"},
			&cli.IntFlag{Name: "iters", Value: 3, Usage: "timed iterations"},
			&cli.IntFlag{Name: "warmup", Value: 1, Usage: "untimed iterations first"},
			&cli.StringFlag{Name: "transport", Value: "quic", Usage: "libp2p transport: quic or tcp"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			&cli.StringFlag{Name: "role", Hidden: true, Usage: "child mode: donor or joiner"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1", Hidden: true, Usage: "child mode: IPv4 address to listen on"},
		},
		Action: benchState,
	}
}

// stateBenchSetup is what the parent hands the joiner: the donors and
// the offer they all serve.
type stateBenchSetup struct {
	Donors []peer.AddrInfo `json:"donors"`
	Offer  state.Offer     `json:"offer"`
	Iters  int             `json:"iters"`
	Warmup int             `json:"warmup"`
}

// stateBenchDonor is what a donor child prints once it serves.
type stateBenchDonor struct {
	Info  peer.AddrInfo `json:"info"`
	Offer state.Offer   `json:"offer"`
}

// stateBenchTimes is the joiner's answer: seconds per timed iteration.
type stateBenchTimes struct {
	Probe  []float64 `json:"probe_s"`
	One    []float64 `json:"fetch_1_s"`
	All    []float64 `json:"fetch_all_s"`
	Failed string    `json:"error,omitempty"`
}

// stateBenchLine is one measurement in the report.
type stateBenchLine struct {
	What     string    `json:"what"`
	Donors   int       `json:"donors"`
	MedianS  float64   `json:"median_s"`
	MinS     float64   `json:"min_s"`
	IterS    []float64 `json:"iter_s"`
	MBps     float64   `json:"mb_s"`              // MB (10^6 bytes) per second at the median
	PerProbe float64   `json:"x_probe"`           // probe's median time / this one's
	OfLink   float64   `json:"of_link,omitempty"` // bound / median: the share of the joiner's downlink
}

type stateBenchReport struct {
	Bytes     int64            `json:"bytes"`
	Donors    int              `json:"donors"`
	Transport string           `json:"transport"`
	Netns     bool             `json:"netns"`
	Rate      string           `json:"rate,omitempty"`
	BoundS    float64          `json:"bound_s,omitempty"`
	Lines     []stateBenchLine `json:"results"`
}

func benchState(c *cli.Context) error {
	d := c.Int("donors")
	if d < 1 || d+1 > netns.MaxHosts {
		return usageErrorf("--donors %d: want 1 to %d", d, netns.MaxHosts-1)
	}
	size := int64(c.Float64("mb") * (1 << 20))
	if size <= 0 || size > 8<<30 || c.Int("iters") < 1 || c.Int("warmup") < 0 {
		return usageErrorf("--mb must be in (0, 8192], --iters positive and --warmup >= 0")
	}
	tr := c.String("transport")
	if tr != "quic" && tr != "tcp" {
		return usageErrorf("--transport %q: want quic or tcp", tr)
	}
	switch c.String("role") {
	case "donor":
		return runStateDonor(c.Context, c.String("listen"), tr, size)
	case "joiner":
		return runStateJoiner(c.Context, c.String("listen"), tr)
	case "":
	default:
		return fmt.Errorf("--role %q: want donor or joiner", c.String("role"))
	}
	rep := stateBenchReport{Bytes: size, Donors: d, Transport: tr}
	var tp *netns.Topology
	if c.Bool("netns") {
		rate, err := parseRate(c.String("rate"))
		if err != nil {
			return usageErrorf("--rate: %w", err)
		}
		if err := netns.Available(); err != nil {
			return fmt.Errorf("--netns: %w", err)
		}
		rates := make([]netns.Rate, d+1)
		for i := range rates {
			rates[i] = rate
		}
		if tp, err = netns.New(c.Context, "bench-st", rates); err != nil {
			return err
		}
		defer tp.Close()
		rep.Netns, rep.Rate, rep.BoundS = true, rate.String(), rate.Duration(size).Seconds()
	}
	if !c.Bool("json") {
		where := "loopback"
		if tp != nil {
			where = "network namespaces, every link " + rep.Rate + " each way"
		}
		fmt.Fprintf(c.App.Writer, "state of %s from %d donor processes to 1 joiner, %s, %s\n", humanBytes(size), d, tr, where)
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Minute)
	defer cancel()
	times, err := runStateBench(ctx, c, tp, d, size, tr)
	if err != nil {
		return err
	}
	probe := median(times.Probe)
	add := func(what string, donors int, its []float64) {
		m := median(its)
		l := stateBenchLine{What: what, Donors: donors, MedianS: m, MinS: slices.Min(its), IterS: its,
			MBps: float64(size) / m / 1e6, PerProbe: probe / m}
		if rep.BoundS > 0 {
			l.OfLink = rep.BoundS / m
		}
		rep.Lines = append(rep.Lines, l)
	}
	add("probe", 1, times.Probe)
	add("fetch", 1, times.One)
	if d > 1 {
		add("fetch", d, times.All)
	}
	return printStateReport(c.App.Writer, c.Bool("json"), rep)
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}

func printStateReport(w io.Writer, asJSON bool, rep stateBenchReport) error {
	if asJSON {
		return json.NewEncoder(w).Encode(rep)
	}
	fmt.Fprintln(w)
	tw := newTable(w)
	fmt.Fprintln(tw, "what\tdonors\tmedian\tmin\tMB/s\t× probe\tof downlink\t")
	for _, l := range rep.Lines {
		of := "-"
		if l.OfLink > 0 {
			of = fmt.Sprintf("%.3f", l.OfLink)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.3fs\t%.3fs\t%.0f\t%.2f\t%s\t\n", l.What, l.Donors, l.MedianS, l.MinS, l.MBps, l.PerProbe, of)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nprobe: one plain netx stream from the first donor, the bytes unchecked (the baseline)")
	if rep.BoundS > 0 {
		fmt.Fprintf(w, "bound: size / the joiner's downlink at %s: %.3fs\n", rep.Rate, rep.BoundS)
	}
	return nil
}

// runStateBench starts the donors, then the joiner, and returns the
// joiner's times.
func runStateBench(ctx context.Context, c *cli.Context, tp *netns.Topology, donors int, size int64, tr string) (stateBenchTimes, error) {
	exe, err := os.Executable()
	if err != nil {
		return stateBenchTimes{}, fmt.Errorf("find own binary: %w", err)
	}
	var children []*allReduceChild
	defer func() {
		for _, ch := range children {
			_ = ch.stdin.Close()
			_ = ch.cmd.Wait()
		}
	}()
	start := func(i int, role string) (*allReduceChild, error) {
		args := []string{"--log-level", childLogLevel(c), "bench", "state", "--role", role, "--mb", strconv.FormatFloat(c.Float64("mb"), 'g', -1, 64), "--transport", tr}
		ch, err := startBenchChild(ctx, tp, i, exe, args)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", role, err)
		}
		children = append(children, ch)
		return ch, nil
	}
	setup := stateBenchSetup{Iters: c.Int("iters"), Warmup: c.Int("warmup")}
	for i := 1; i <= donors; i++ {
		ch, err := start(i, "donor")
		if err != nil {
			return stateBenchTimes{}, err
		}
		var dr stateBenchDonor
		if err := ch.readJSON(&dr); err != nil {
			return stateBenchTimes{}, fmt.Errorf("donor %d: %w", i, err)
		}
		if i > 1 && dr.Offer != setup.Offer {
			return stateBenchTimes{}, fmt.Errorf("donor %d offers %v, donor 1 %v", i, dr.Offer, setup.Offer)
		}
		setup.Offer = dr.Offer
		setup.Donors = append(setup.Donors, dr.Info)
	}
	j, err := start(0, "joiner")
	if err != nil {
		return stateBenchTimes{}, err
	}
	line, _ := json.Marshal(setup)
	if _, err := fmt.Fprintf(j.stdin, "%s\n", line); err != nil {
		return stateBenchTimes{}, fmt.Errorf("write to joiner: %w", err)
	}
	var times stateBenchTimes
	if err := j.readJSON(&times); err != nil {
		return times, fmt.Errorf("joiner: %w", err)
	}
	if times.Failed != "" {
		return times, fmt.Errorf("joiner: %s", times.Failed)
	}
	if len(times.Probe) == 0 || len(times.One) == 0 || len(times.All) == 0 {
		return times, errors.New("joiner reported no timed iteration")
	}
	return times, nil
}

// benchStateNode starts the child's libp2p host on one transport.
func benchStateNode(ctx context.Context, listen, tr string) (*netx.Node, error) {
	cfg := netx.DefaultConfig()
	cfg.ListenAddrs = []string{"/ip4/" + listen + "/udp/0/quic-v1"}
	if tr == "tcp" {
		cfg.ListenAddrs = []string{"/ip4/" + listen + "/tcp/0"}
	}
	cfg.EnableNAT = false
	return netx.New(ctx, cfg)
}

// benchStateBlob is the state every donor serves: size pseudo-random
// bytes from a fixed seed, so all donors hold the same blob without
// sending it to each other, and nothing in it compresses.
func benchStateBlob(size int64) []byte {
	b := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{'d', 't', 'r', 'a', 'i', 'n'}).Read(b)
	return b
}

// runStateDonor serves the blob and probes until stdin closes.
func runStateDonor(ctx context.Context, listen, tr string, size int64) error {
	nd, err := benchStateNode(ctx, listen, tr)
	if err != nil {
		return fmt.Errorf("donor: start host: %w", err)
	}
	defer nd.Close()
	donor := state.NewDonor(nd.Host(), benchStateProto, state.DonorOptions{Run: "bench"})
	defer donor.Close()
	offer := donor.Offer(1, benchStateBlob(size))
	netx.RegisterProbeHandler(nd.Host(), benchStateProbe, size)
	if err := json.NewEncoder(os.Stdout).Encode(stateBenchDonor{Info: peer.AddrInfo{ID: nd.ID(), Addrs: nd.Host().Addrs()}, Offer: offer}); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// runStateJoiner reads the setup, connects to every donor and times the
// probe and the fetches, alternating them so that the machine's noise
// falls on all three alike.
func runStateJoiner(ctx context.Context, listen, tr string) error {
	out := json.NewEncoder(os.Stdout)
	times, err := stateJoin(ctx, listen, tr)
	if err != nil {
		times.Failed = err.Error()
	}
	return out.Encode(times)
}

func stateJoin(ctx context.Context, listen, tr string) (stateBenchTimes, error) {
	var times stateBenchTimes
	line, err := bufio.NewReader(os.Stdin).ReadBytes('\n')
	if err != nil {
		return times, fmt.Errorf("read setup: %w", err)
	}
	var setup stateBenchSetup
	if err := json.Unmarshal(line, &setup); err != nil {
		return times, fmt.Errorf("setup %q: %w", strings.TrimSpace(string(line)), err)
	}
	nd, err := benchStateNode(ctx, listen, tr)
	if err != nil {
		return times, fmt.Errorf("joiner: start host: %w", err)
	}
	defer nd.Close()
	var ids []peer.ID
	for _, p := range setup.Donors {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := nd.Host().Connect(cctx, p)
		cancel()
		if err != nil {
			return times, fmt.Errorf("connect to donor %s: %w", p.ID, err)
		}
		ids = append(ids, p.ID)
	}
	fetch := func(donors []peer.ID) (float64, error) {
		t0 := time.Now()
		_, _, err := state.Fetch(ctx, nd.Host(), benchStateProto, setup.Offer, donors, state.FetchOptions{})
		return time.Since(t0).Seconds(), err
	}
	for it := range setup.Warmup + setup.Iters {
		r, err := netx.MeasureBandwidth(ctx, nd.Host(), ids[0], benchStateProbe, setup.Offer.Size, netx.Download)
		if err != nil {
			return times, fmt.Errorf("probe: %w", err)
		}
		one, err := fetch(ids[:1])
		if err != nil {
			return times, err
		}
		all, err := fetch(ids)
		if err != nil {
			return times, err
		}
		if it >= setup.Warmup {
			times.Probe = append(times.Probe, r.Took.Seconds())
			times.One = append(times.One, one)
			times.All = append(times.All, all)
		}
	}
	return times, nil
}
