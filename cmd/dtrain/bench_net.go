package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/netx"
)

const benchNetProbe = "/dtrain/bench/probe/1.0.0"

func benchNetCommand() *cli.Command {
	return &cli.Command{
		Name:  "net",
		Usage: "libp2p stream goodput on loopback between two processes: QUIC, with TCP as the baseline",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "bytes", Value: "256MiB", Usage: "bytes per direction (KiB, MiB, GiB: powers of 1024; kB, MB, GB: of 1000)"},
			&cli.BoolFlag{Name: "in-process", Usage: "both hosts in this process instead of a child process"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			&cli.StringFlag{Name: "serve", Hidden: true, Usage: "child mode: serve probes on these comma-separated multiaddrs"},
		},
		Action: benchNet,
	}
}

// netBench is one transport's measurement.
type netBench struct {
	Transport    string        `json:"transport"`
	RTT          time.Duration `json:"rtt_ns"`
	UploadMbit   float64       `json:"upload_mbit_s"`
	DownloadMbit float64       `json:"download_mbit_s"`
}

type netBenchReport struct {
	Bytes      int64      `json:"bytes"`
	Processes  int        `json:"processes"`
	Results    []netBench `json:"results"`
	QUICPerTCP float64    `json:"quic_per_tcp"`
}

func benchNet(c *cli.Context) error {
	if addrs := c.String("serve"); addrs != "" {
		return serveBenchNet(c.Context, strings.Split(addrs, ","))
	}
	n, err := parseByteSize(c.String("bytes"))
	if err != nil {
		return fmt.Errorf("--bytes: %w", err)
	}
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Minute)
	defer cancel()
	listen := []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
	var server peer.AddrInfo
	rep := netBenchReport{Bytes: n, Processes: 2}
	if c.Bool("in-process") {
		rep.Processes = 1
		h, err := libp2p.New(libp2p.ListenAddrStrings(listen...))
		if err != nil {
			return fmt.Errorf("start server host: %w", err)
		}
		defer h.Close()
		netx.RegisterProbeHandler(h, benchNetProbe, n)
		server = peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
	} else {
		stop, info, err := startBenchNetChild(ctx, listen)
		if err != nil {
			return err
		}
		defer stop()
		server = info
	}
	for _, transport := range []string{"quic-v1", "tcp"} {
		r, err := measureTransport(ctx, server, transport, n)
		if err != nil {
			return err
		}
		rep.Results = append(rep.Results, r)
	}
	rep.QUICPerTCP = (rep.Results[0].UploadMbit + rep.Results[0].DownloadMbit) / (rep.Results[1].UploadMbit + rep.Results[1].DownloadMbit)
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(rep)
	}
	fmt.Fprintf(c.App.Writer, "%s each way on loopback, %d process(es)\n\n", humanBytes(n), rep.Processes)
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "transport\trtt\tupload Mbit/s\tdownload Mbit/s\t")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%v\t%.0f\t%.0f\t\n", r.Transport, r.RTT.Round(time.Microsecond), r.UploadMbit, r.DownloadMbit)
	}
	tw.Flush()
	fmt.Fprintf(c.App.Writer, "\nquic / tcp: %.2fx\n", rep.QUICPerTCP)
	return nil
}

// measureTransport connects a fresh client host to server over one
// transport only and runs the probes both ways.
func measureTransport(ctx context.Context, server peer.AddrInfo, transport string, n int64) (netBench, error) {
	info := peer.AddrInfo{ID: server.ID}
	for _, a := range server.Addrs {
		if strings.HasSuffix(a.String(), "/"+transport) || (transport == "tcp" && strings.Contains(a.String(), "/tcp/")) {
			info.Addrs = append(info.Addrs, a)
		}
	}
	if len(info.Addrs) == 0 {
		return netBench{}, fmt.Errorf("server has no %s address among %v", transport, server.Addrs)
	}
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		return netBench{}, fmt.Errorf("start client host: %w", err)
	}
	defer h.Close()
	if err := h.Connect(ctx, info); err != nil {
		return netBench{}, fmt.Errorf("connect over %s: %w", transport, err)
	}
	return probeBoth(ctx, h, info.ID, transport, n)
}

func probeBoth(ctx context.Context, h host.Host, p peer.ID, transport string, n int64) (netBench, error) {
	out := netBench{Transport: transport}
	var err error
	if out.RTT, err = netx.Ping(ctx, h, p, benchNetProbe); err != nil {
		return out, err
	}
	for _, dir := range []netx.Direction{netx.Upload, netx.Download} {
		r, err := netx.MeasureBandwidth(ctx, h, p, benchNetProbe, n, dir)
		if err != nil {
			return out, err
		}
		if dir == netx.Upload {
			out.UploadMbit = r.BitsPerSecond / 1e6
		} else {
			out.DownloadMbit = r.BitsPerSecond / 1e6
		}
	}
	return out, nil
}

// startBenchNetChild runs `dtrain bench net --serve` in a child process and
// reads its peer id and addresses from its first output line.
func startBenchNetChild(ctx context.Context, listen []string) (stop func(), info peer.AddrInfo, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, info, fmt.Errorf("find own binary: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, "bench", "net", "--serve", strings.Join(listen, ","))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, info, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, info, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, info, fmt.Errorf("start probe server process: %w", err)
	}
	stop = func() { _ = stdin.Close(); _ = cmd.Wait() }
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err == nil {
		err = json.Unmarshal([]byte(line), &info)
	}
	if err != nil {
		stop()
		return nil, info, fmt.Errorf("read probe server's address: %w", err)
	}
	return stop, info, nil
}

// serveBenchNet is the child side: serve probes until stdin closes.
func serveBenchNet(ctx context.Context, listen []string) error {
	h, err := libp2p.New(libp2p.ListenAddrStrings(listen...))
	if err != nil {
		return fmt.Errorf("start probe server: %w", err)
	}
	defer h.Close()
	netx.RegisterProbeHandler(h, benchNetProbe, 1<<40)
	if err := json.NewEncoder(os.Stdout).Encode(peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// parseByteSize reads a positive byte count up to 1 TiB: "256MiB" and
// "1GiB" are powers of 1024, "256MB" powers of 1000, "4096" bytes.
func parseByteSize(s string) (int64, error) {
	v, err := humanize.ParseBytes(s)
	if err != nil || v == 0 || v > 1<<40 {
		return 0, fmt.Errorf("%q is not a positive byte count up to 1TiB (e.g. 256MiB, 1GB, 4096)", s)
	}
	return int64(v), nil
}
