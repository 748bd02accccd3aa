package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/netx/netns"
	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/config"
)

// allReduceTolerance is the largest error from the exact mean each codec
// may leave, for values in [-1, 1): float32 summation order for none, one
// rounding per phase (reduce-scatter, all-gather) for the others.
var allReduceTolerance = map[string]float64{"none": 1e-5, "fp16": 2e-3, "bf16": 2e-2, "int8": 3e-2}

func benchAllReduceCommand() *cli.Command {
	return &cli.Command{
		Name:  "allreduce",
		Usage: "all-reduce time of N peer processes: dtrain's round over QUIC vs torch.distributed gloo",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "peers", Value: 4, Usage: "processes, one peer each"},
			&cli.Float64Flag{Name: "mb", Value: 64, Usage: "vector size in MiB of float32"},
			&cli.StringFlag{Name: "compress", Value: "none", Usage: "wire codec: none, fp16, bf16 or int8 (gloo always sends fp32)"},
			&cli.StringFlag{Name: "aggregation", Value: "mean", Usage: "how each span's owner combines the values: " + strings.Join(allreduce.Aggregations, ", ") + " (a robust rule is checked for every peer holding the same bits, and its max error is its distance from the mean)"},
			&cli.BoolFlag{Name: "netns", Usage: "run each peer in its own network namespace behind a shaped bridge (needs root)"},
			&cli.StringFlag{Name: "rate", Value: "200Mbit", Usage: "--netns: every peer's link rate, each way"},
			&cli.StringFlag{Name: "slow", Usage: "--netns: the last peer's link rate instead of --rate"},
			&cli.IntFlag{Name: "iters", Value: 3, Usage: "timed rounds"},
			&cli.IntFlag{Name: "warmup", Value: 1, Usage: "untimed rounds first"},
			&cli.IntFlag{Name: "part", Value: allreduce.DefaultPartSize, Usage: "elements per part"},
			&cli.StringFlag{Name: "transport", Value: "quic", Usage: "libp2p transport between the peers: quic or tcp"},
			&cli.StringFlag{Name: "pace", Value: "auto", Usage: "each peer's upload limit for the round's frames (a miner's net.upload_limit): a rate like 186Mbit, none, or auto: " + strconv.Itoa(int(math.Round(paceShare*100))) + "% of the peer's own link under --netns, none on loopback"},
			&cli.DurationFlag{Name: "timeout", Usage: "round deadline (default: from the size and the rates)"},
			&cli.StringFlag{Name: "python", Value: "/usr/bin/python3", Usage: "interpreter with torch for the gloo baseline"},
			&cli.BoolFlag{Name: "no-baseline", Usage: "skip gloo"},
			&cli.BoolFlag{Name: "relay", Usage: "also time the round with every peer reaching the others only through a circuit relay without limits " +
				"(one more process; under --netns on a host of its own, its link at the peers' rates summed)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			&cli.IntFlag{Name: "peer", Value: -1, Hidden: true, Usage: "child mode: be this rank"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1", Hidden: true, Usage: "child mode: IPv4 address to listen on"},
			&cli.StringFlag{Name: "relay-addr", Hidden: true, Usage: "child mode: reach the other peers only through the relay at this multiaddr"},
			&cli.BoolFlag{Name: "relay-node", Hidden: true, Usage: "child mode: be the relay"},
		},
		Action: benchAllReduce,
	}
}

// allReduceBench is one implementation's measurement.
type allReduceBench struct {
	Impl       string    `json:"impl"`
	MedianS    float64   `json:"median_s"`
	MinS       float64   `json:"min_s"`
	IterS      []float64 `json:"iter_s,omitempty"`
	MaxErr     float64   `json:"max_err"`
	Efficiency float64   `json:"efficiency,omitempty"`
}

type allReduceBenchReport struct {
	Peers     int             `json:"peers"`
	Bytes     int64           `json:"bytes"`
	Codec     string          `json:"codec"`
	Aggregate string          `json:"aggregation"`
	Transport string          `json:"transport"`
	Netns     bool            `json:"netns"`
	Rates     []string        `json:"rates,omitempty"`
	Spans     string          `json:"spans"`
	Pace      string          `json:"upload_limit"`
	Paces     []string        `json:"upload_limits,omitempty"`
	BoundS    float64         `json:"bound_s,omitempty"`
	BoundAt   string          `json:"bound_at,omitempty"`
	DTrain    allReduceBench  `json:"dtrain"`
	Relay     *allReduceBench `json:"dtrain_relay,omitempty"`
	RelayPerD float64         `json:"relay_per_direct,omitempty"`
	RelayRate string          `json:"relay_rate,omitempty"`
	Gloo      *allReduceBench `json:"gloo,omitempty"`
	GlooPerD  float64         `json:"gloo_per_dtrain,omitempty"`
}

func benchAllReduce(c *cli.Context) error {
	n := c.Int("peers")
	if n < 2 || n > netns.MaxHosts {
		return fmt.Errorf("--peers %d: want 2 to %d", n, netns.MaxHosts)
	}
	if c.Float64("mb") <= 0 || c.Int("iters") < 1 || c.Int("warmup") < 0 || c.Int("part") < 1 {
		return errors.New("--mb, --iters and --part must be positive and --warmup >= 0")
	}
	codec, err := allreduce.ParseCodec(c.String("compress"))
	if err != nil {
		return err
	}
	agg, err := allreduce.ParseAggregation(c.String("aggregation"))
	if err != nil {
		return err
	}
	if tr := c.String("transport"); tr != "quic" && tr != "tcp" {
		return fmt.Errorf("--transport %q: want quic or tcp", tr)
	}
	elems := int(c.Float64("mb") * (1 << 20) / 4)
	rates, err := benchRates(c, n)
	if err != nil {
		return err
	}
	timeout := c.Duration("timeout")
	if timeout <= 0 {
		timeout = autoRoundTimeout(int64(4*elems), rates)
	}
	paces, err := benchPaces(c.String("pace"), n, rates)
	if err != nil {
		return usageErrorf("--pace: %w", err)
	}
	if c.Bool("relay-node") {
		return runBenchRelay(c.Context, c.String("listen"), c.String("transport"))
	}
	if rank := c.Int("peer"); rank >= 0 {
		return runAllReducePeer(c.Context, allReducePeerConfig{rank: rank, peers: n, n: elems, part: c.Int("part"),
			codec: codec, agg: agg, listen: c.String("listen"), transport: c.String("transport"), timeout: timeout, pace: paces[rank],
			relay: c.String("relay-addr")})
	}
	rep := allReduceBenchReport{Peers: n, Bytes: int64(4 * elems), Codec: c.String("compress"), Aggregate: agg.String(), Transport: c.String("transport"),
		Netns: rates != nil, Spans: "equal", Pace: "none"}
	if slices.Max(paces) > 0 {
		for _, p := range paces {
			rep.Paces = append(rep.Paces, p.String())
		}
		rep.Pace = strings.Join(rep.Paces, ", ")
	}
	var tp *netns.Topology
	if rates != nil {
		if err := netns.Available(); err != nil {
			return fmt.Errorf("--netns: %w", err)
		}
		hosts := rates
		if c.Bool("relay") {
			// The relay's own host, whose link carries every peer's traffic.
			var sum netns.Rate
			for _, r := range rates {
				sum += r
			}
			hosts = append(slices.Clone(rates), sum)
			rep.RelayRate = sum.String()
		}
		if tp, err = netns.New(c.Context, "bench-ar", hosts); err != nil {
			return err
		}
		defer tp.Close()
		slowest := slices.Min(rates)
		for _, r := range rates {
			rep.Rates = append(rep.Rates, r.String())
		}
		if slowest != slices.Max(rates) {
			rep.Spans = "sized by the configured link rates (not measured)"
		}
		bound := allReduceBoundAt(n, rep.Bytes, slowest)
		rep.BoundS, rep.BoundAt = bound.Seconds(), slowest.String()
	}
	if !c.Bool("json") {
		where := "loopback"
		if tp != nil {
			where = "network namespaces at " + strings.Join(rep.Rates, ", ")
		}
		fmt.Fprintf(c.App.Writer, "%d peers, %s float32, codec %s, aggregation %s, %s, %s; spans %s; upload limit %s\n", n, humanBytes(rep.Bytes), rep.Codec, rep.Aggregate, rep.Transport, where, rep.Spans, rep.Pace)
	}
	ctx, cancel := context.WithTimeout(c.Context, time.Duration(c.Int("warmup")+c.Int("iters")+1)*timeout+time.Minute)
	defer cancel()
	if rep.DTrain, err = runDTrainAllReduce(ctx, c, tp, rates, paces, timeout, ""); err != nil {
		return err
	}
	if c.Bool("relay") {
		r, err := runRelayedAllReduce(ctx, c, tp, rates, paces, timeout)
		if err != nil {
			return fmt.Errorf("through the relay: %w", err)
		}
		rep.Relay, rep.RelayPerD = &r, r.MedianS/rep.DTrain.MedianS
	}
	for _, b := range []*allReduceBench{&rep.DTrain, rep.Relay} {
		if tol := allReduceTolerance[rep.Codec]; b != nil && agg == allreduce.Mean && b.MaxErr > tol {
			return fmt.Errorf("%s's mean is off by %g, more than %s allows (%g)", b.Impl, b.MaxErr, rep.Codec, tol)
		}
	}
	if !c.Bool("no-baseline") {
		g, err := runGlooAllReduce(ctx, c.String("python"), tp, n, c.Float64("mb"), c.Int("iters"), c.Int("warmup"))
		if err != nil {
			return fmt.Errorf("gloo baseline: %w (use --no-baseline to skip)", err)
		}
		rep.Gloo, rep.GlooPerD = &g, g.MedianS/rep.DTrain.MedianS
	}
	for _, b := range []*allReduceBench{&rep.DTrain, rep.Relay, rep.Gloo} {
		if b != nil && rep.BoundS > 0 {
			b.Efficiency = rep.BoundS / b.MedianS
		}
	}
	return printAllReduceReport(c.App.Writer, c.Bool("json"), rep)
}

func printAllReduceReport(w io.Writer, asJSON bool, rep allReduceBenchReport) error {
	if asJSON {
		return json.NewEncoder(w).Encode(rep)
	}
	fmt.Fprintln(w)
	tw := newTable(w)
	fmt.Fprintln(tw, "impl\tmedian\tmin\tefficiency\tmax error\t")
	for _, b := range []*allReduceBench{&rep.DTrain, rep.Relay, rep.Gloo} {
		if b == nil {
			continue
		}
		eff := "-"
		if b.Efficiency > 0 {
			eff = fmt.Sprintf("%.3f", b.Efficiency)
		}
		fmt.Fprintf(tw, "%s\t%.3fs\t%.3fs\t%s\t%.2g\t\n", b.Impl, b.MedianS, b.MinS, eff, b.MaxErr)
	}
	tw.Flush()
	if rep.BoundS > 0 {
		fmt.Fprintf(w, "\nbound 2(N-1)/N·S/B at %s: %.3fs\n", rep.BoundAt, rep.BoundS)
	}
	if rep.Relay != nil {
		where := "on loopback"
		if rep.RelayRate != "" {
			where = "its link at " + rep.RelayRate
		}
		fmt.Fprintf(w, "through the relay (%s) / direct: %.2fx the time\n", where, rep.RelayPerD)
	}
	if rep.Gloo != nil {
		fmt.Fprintf(w, "gloo / dtrain: %.2fx", rep.GlooPerD)
		if !rep.Netns {
			fmt.Fprintf(w, " (dtrain's %s encrypts every byte; gloo's TCP sends plaintext)", map[string]string{
				"quic": "QUIC (TLS 1.3, in user space)", "tcp": "libp2p TCP (TLS 1.3 or Noise, yamux)"}[rep.Transport])
		}
		fmt.Fprintln(w)
	}
	return nil
}

// allReduceBoundAt is the bandwidth-optimal all-reduce time: every peer
// sends and receives 2(N−1)/N of the vector over its link (Patarasuk & Yuan
// 2009, "Bandwidth optimal all-reduce algorithms").
func allReduceBoundAt(n int, bytes int64, b netns.Rate) time.Duration {
	return b.Duration(int64(float64(bytes) * 2 * float64(n-1) / float64(n)))
}

// autoRoundTimeout gives a round ten times the bound at the slowest link
// (1 Gbit/s on loopback) plus a minute for start-up.
func autoRoundTimeout(bytes int64, rates []netns.Rate) time.Duration {
	slowest := netns.Gbit
	if rates != nil {
		slowest = slices.Min(rates)
	}
	return time.Minute + 10*slowest.Duration(2*bytes)
}

// paceShare is the upload limit, as a share of a peer's link, that bench
// allreduce --pace auto and dtrain swarm --links give their peers:
// the frames' bytes at 94% of the link fill about 99% of it once QUIC, UDP,
// IP and Ethernet headers are added (5% at a 1500-byte MTU, counted by tc),
// so the link's queue stays nearly empty.
const paceShare = 0.94

// benchPaces returns every peer's upload limit (0: none) for --pace.
func benchPaces(s string, n int, rates []netns.Rate) ([]netns.Rate, error) {
	out := make([]netns.Rate, n)
	switch s {
	case "none":
	case "auto":
		for i := range rates {
			out[i] = netns.Rate(float64(rates[i]) * paceShare)
		}
	default:
		r, err := parseRate(s)
		if err != nil {
			return nil, err
		}
		for i := range out {
			out[i] = r
		}
	}
	return out, nil
}

// benchRates returns every peer's link rate under --netns, nil otherwise.
func benchRates(c *cli.Context, n int) ([]netns.Rate, error) {
	if !c.Bool("netns") {
		return nil, nil
	}
	r, err := parseRate(c.String("rate"))
	if err != nil {
		return nil, fmt.Errorf("--rate: %w", err)
	}
	rates := make([]netns.Rate, n)
	for i := range rates {
		rates[i] = r
	}
	if s := c.String("slow"); s != "" {
		if rates[n-1], err = parseRate(s); err != nil {
			return nil, fmt.Errorf("--slow: %w", err)
		}
	}
	return rates, nil
}

// parseRate reads a tc-style rate: "200Mbit", "1Gbit", "500Kbit", "9600bit".
func parseRate(s string) (netns.Rate, error) {
	r, err := config.ParseRate(s)
	return netns.Rate(r), err
}

// allReduceChild is one peer process, seen from the parent.
type allReduceChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func (ch *allReduceChild) readJSON(v any) error {
	line, err := ch.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read from peer: %w", err)
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("peer printed %q: %w", line, err)
	}
	return nil
}

// runDTrainAllReduce starts one child per peer, hands every child the
// group, and times warmup+iters rounds, each started by a "go" line to all
// children once all finished the previous one. A round's time is its
// slowest peer's.
//
// With relay (a multiaddr), every child reaches the others only through
// that relay.
func runDTrainAllReduce(ctx context.Context, c *cli.Context, tp *netns.Topology, rates, paces []netns.Rate, timeout time.Duration, relay string) (allReduceBench, error) {
	n := c.Int("peers")
	children, err := startAllReduceChildren(ctx, c, tp, paces, timeout, relay)
	defer func() {
		for _, ch := range children {
			_ = ch.stdin.Close()
			_ = ch.cmd.Wait()
		}
	}()
	if err != nil {
		return allReduceBench{}, err
	}
	setup := allReducePeerSetup{Bandwidth: make([]float64, n)}
	for i, ch := range children {
		var info peer.AddrInfo
		if err := ch.readJSON(&info); err != nil {
			return allReduceBench{}, fmt.Errorf("peer %d: %w", i, err)
		}
		setup.Peers = append(setup.Peers, info)
		if rates != nil {
			setup.Bandwidth[i] = float64(rates[i]) / 8
		}
	}
	line, _ := json.Marshal(setup)
	if err := broadcast(children, string(line)+"\n"); err != nil {
		return allReduceBench{}, err
	}
	for i, ch := range children {
		var ready struct{ Ready bool }
		if err := ch.readJSON(&ready); err != nil || !ready.Ready {
			return allReduceBench{}, fmt.Errorf("peer %d not ready: %v", i, err)
		}
	}
	out := allReduceBench{Impl: "dtrain"}
	if relay != "" {
		out.Impl = "dtrain via relay"
	}
	for it := range c.Int("warmup") + c.Int("iters") {
		if err := broadcast(children, fmt.Sprintf("go %d\n", it)); err != nil {
			return out, err
		}
		var slowest float64
		digest := ""
		for i, ch := range children {
			var r allReducePeerIter
			if err := ch.readJSON(&r); err != nil {
				return out, fmt.Errorf("peer %d, round %d: %w", i, it, err)
			}
			if r.Err != "" {
				return out, fmt.Errorf("peer %d, round %d: %s", i, it, r.Err)
			}
			if i > 0 && r.Digest != digest {
				return out, fmt.Errorf("round %d: peer %d holds other values than peer 0 (digest %s, %s)", it, i, r.Digest, digest)
			}
			digest = r.Digest
			slowest, out.MaxErr = max(slowest, r.TookS), max(out.MaxErr, r.MaxErr)
		}
		if it >= c.Int("warmup") {
			out.IterS = append(out.IterS, slowest)
		}
	}
	out.MedianS, out.MinS = median(out.IterS), slices.Min(out.IterS)
	return out, nil
}

// startAllReduceChildren runs `dtrain bench allreduce --peer i` once per
// peer, inside host i's namespace when tp is set, with its upload limit
// paces[i] (0: none) resolved here, through relay when it is set.
func startAllReduceChildren(ctx context.Context, c *cli.Context, tp *netns.Topology, paces []netns.Rate, timeout time.Duration, relay string) ([]*allReduceChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	var children []*allReduceChild
	for i := range c.Int("peers") {
		args := []string{"--log-level", childLogLevel(c), "bench", "allreduce", "--peer", strconv.Itoa(i), "--peers", strconv.Itoa(c.Int("peers")),
			"--mb", strconv.FormatFloat(c.Float64("mb"), 'g', -1, 64), "--compress", c.String("compress"), "--aggregation", c.String("aggregation"),
			"--part", strconv.Itoa(c.Int("part")), "--timeout", timeout.String(), "--transport", c.String("transport"), "--pace", "none"}
		if paces[i] > 0 {
			args[len(args)-1] = paces[i].String()
		}
		if relay != "" {
			args = append(args, "--relay-addr", relay)
		}
		ch, err := startBenchChild(ctx, tp, i, exe, args)
		if err != nil {
			return children, fmt.Errorf("start peer %d: %w", i, err)
		}
		children = append(children, ch)
	}
	return children, nil
}

// startBenchChild runs this binary with args as a benchmark's process i:
// inside host i's namespace, listening on its address, when tp is set.
// The child's stderr is this process's.
func startBenchChild(ctx context.Context, tp *netns.Topology, i int, exe string, args []string) (*allReduceChild, error) {
	var cmd *exec.Cmd
	if tp != nil {
		cmd = tp.Command(ctx, i, exe, append(args, "--listen", tp.Addr(i))...)
	} else {
		cmd = exec.CommandContext(ctx, exe, args...)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &allReduceChild{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}, nil
}

// childLogLevel is the log level of a benchmark's child processes: errors
// only (they report through their output and exit status, and libp2p's
// warnings about connections closed at the end would only clutter the
// table), unless the user asked for debug.
func childLogLevel(c *cli.Context) string {
	if c.String("log-level") == "debug" {
		return "debug"
	}
	return "error"
}

func broadcast(children []*allReduceChild, line string) error {
	for i, ch := range children {
		if _, err := io.WriteString(ch.stdin, line); err != nil {
			return fmt.Errorf("write to peer %d: %w", i, err)
		}
	}
	return nil
}
