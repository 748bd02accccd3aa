package netx

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Environment of the re-executed test binary that runs one host inside a
// namespace (the Go test re-exec pattern: a network namespace belongs to a
// thread, so a whole process in `ip netns exec` is the robust way).
const (
	envHelperRole  = "DTRAIN_NETNS_ROLE"  // "server" or "client"
	envHelperAddr  = "DTRAIN_NETNS_ADDR"  // server: listen multiaddrs (comma-separated); client: server's full multiaddr
	envHelperBytes = "DTRAIN_NETNS_BYTES" // client: bytes per direction
	helperPrefix   = "NETNS "             // marks the helper's lines among the test framework's output
	netnsProbe     = "/dtrain/netns-test/probe/1.0.0"
)

// TestNetnsHelperProcess is not a test: it is the body of the helper
// processes the namespace tests start, and skips when run directly.
func TestNetnsHelperProcess(t *testing.T) {
	role := os.Getenv(envHelperRole)
	if role == "" {
		t.Skip("helper process for the network namespace tests")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := runNetnsHelper(ctx, role); err != nil {
		fmt.Printf("%serror %v\n", helperPrefix, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runNetnsHelper(ctx context.Context, role string) error {
	switch role {
	case "server":
		h, err := libp2p.New(libp2p.ListenAddrStrings(strings.Split(os.Getenv(envHelperAddr), ",")...))
		if err != nil {
			return err
		}
		defer h.Close()
		RegisterProbeHandler(h, netnsProbe, 1<<30)
		fmt.Printf("%sid %s\n", helperPrefix, h.ID())
		// Serve until the parent closes stdin (or the lifetime ends).
		done := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
		}
		return nil
	case "client":
		n, err := strconv.ParseInt(os.Getenv(envHelperBytes), 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", envHelperBytes, err)
		}
		info, err := peer.AddrInfoFromString(os.Getenv(envHelperAddr))
		if err != nil {
			return err
		}
		h, err := libp2p.New(libp2p.NoListenAddrs)
		if err != nil {
			return err
		}
		defer h.Close()
		if err := h.Connect(ctx, *info); err != nil {
			return err
		}
		rtt, err := Ping(ctx, h, info.ID, netnsProbe)
		if err != nil {
			return err
		}
		fmt.Printf("%srtt %d\n", helperPrefix, rtt)
		for _, dir := range []Direction{Upload, Download} {
			r, err := MeasureBandwidth(ctx, h, info.ID, netnsProbe, n, dir)
			if err != nil {
				return err
			}
			b, _ := json.Marshal(r)
			fmt.Printf("%s%v %s\n", helperPrefix, dir, b)
		}
		return nil
	}
	return runRelayHelper(ctx, role)
}

// netnsLink is two namespaces joined by one veth pair, each end shaped.
type netnsLink struct {
	nsA, nsB     string
	addrA, addrB string // without prefix length
}

// newShapedLink builds the namespaces and a veth between them, shapes both
// ends with tbf at rate, and removes everything when the test ends.
func newShapedLink(t *testing.T, rate string) *netnsLink {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespace tests need root (CAP_NET_ADMIN); skipping")
	}
	linkSeq++
	id := fmt.Sprintf("%d%02d", os.Getpid()%100000, linkSeq%100)
	l := &netnsLink{nsA: "dtra" + id, nsB: "dtrb" + id}
	if out, err := exec.Command("ip", "netns", "add", l.nsA).CombinedOutput(); err != nil {
		t.Skipf("ip netns add not permitted here (%v: %s); skipping namespace test", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", l.nsA).Run() })
	mustRun(t, "ip", "netns", "add", l.nsB)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", l.nsB).Run() })

	subnet := fmt.Sprintf("10.%d.%d", 100+linkSeq%100, os.Getpid()%250)
	l.addrA, l.addrB = subnet+".1", subnet+".2"
	vethA, vethB := "dva"+id, "dvb"+id
	mustRun(t, "ip", "link", "add", vethA, "netns", l.nsA, "type", "veth", "peer", "name", vethB, "netns", l.nsB)
	for _, end := range []struct{ ns, dev, addr string }{{l.nsA, vethA, l.addrA}, {l.nsB, vethB, l.addrB}} {
		mustRun(t, "ip", "-n", end.ns, "link", "set", "lo", "up")
		mustRun(t, "ip", "-n", end.ns, "addr", "add", end.addr+"/24", "dev", end.dev)
		mustRun(t, "ip", "-n", end.ns, "link", "set", end.dev, "up")
		// burst must hold a full GSO burst from quic-go or tbf undershoots;
		// latency only sizes the queue (rate × 400 ms), which QUIC's
		// congestion control keeps from overflowing.
		mustRun(t, "tc", "-n", end.ns, "qdisc", "add", "dev", end.dev, "root", "tbf",
			"rate", rate, "burst", tbfBurst, "latency", "400ms")
	}
	return l
}

// tbfBurst is the bucket size used on shaped links.
var tbfBurst = "64kb"

// linkSeq keeps the names of one process's links apart.
var linkSeq int

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

// netnsResult is what the client helper measured.
type netnsResult struct {
	RTT              time.Duration
	Upload, Download BandwidthResult
}

// probeAcross runs a probe server in nsA listening on listen (a multiaddr
// template with %s for A's address) and a client in nsB measuring n bytes
// each way.
func (l *netnsLink) probeAcross(t *testing.T, listen string, n int64) netnsResult {
	t.Helper()
	addr := fmt.Sprintf(listen, l.addrA)
	server := exec.Command("ip", "netns", "exec", l.nsA, os.Args[0], "-test.run=^TestNetnsHelperProcess$")
	server.Env = append(os.Environ(), envHelperRole+"=server", envHelperAddr+"="+addr)
	stdin, err := server.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	server.Stderr = os.Stderr
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		timer := time.AfterFunc(10*time.Second, func() { _ = server.Process.Kill() })
		_ = server.Wait()
		timer.Stop()
	}()
	lines := bufio.NewScanner(stdout)
	var id string
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), helperPrefix+"id "); ok {
			id = rest
			break
		}
	}
	if id == "" {
		t.Fatalf("probe server in %s printed no peer id", l.nsA)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := exec.CommandContext(ctx, "ip", "netns", "exec", l.nsB, os.Args[0], "-test.run=^TestNetnsHelperProcess$")
	client.Env = append(os.Environ(), envHelperRole+"=client",
		envHelperAddr+"="+addr+"/p2p/"+id, envHelperBytes+"="+strconv.FormatInt(n, 10))
	out, err := client.Output()
	if err != nil {
		t.Fatalf("probe client in %s: %v\n%s", l.nsB, err, out)
	}
	return parseNetnsOutput(t, string(out))
}

func parseNetnsOutput(t *testing.T, out string) netnsResult {
	t.Helper()
	var r netnsResult
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, helperPrefix)
		if !ok {
			continue
		}
		kind, val, _ := strings.Cut(rest, " ")
		var err error
		switch kind {
		case "rtt":
			var ns int64
			ns, err = strconv.ParseInt(val, 10, 64)
			r.RTT = time.Duration(ns)
		case "upload":
			err = json.Unmarshal([]byte(val), &r.Upload)
		case "download":
			err = json.Unmarshal([]byte(val), &r.Download)
		case "error":
			t.Fatalf("probe client: %s", val)
		}
		if err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
	}
	if r.Upload.Bytes == 0 || r.Download.Bytes == 0 {
		t.Fatalf("probe client printed no measurements:\n%s", out)
	}
	return r
}

// TestNetnsShapedBandwidth measures probe goodput across a veth shaped with
// tbf in both directions. At 100 Mbit/s over QUIC it must land within 10%
// of the link rate: goodput is below the wire rate by QUIC, UDP and IP
// headers (about 4% at a 1500-byte MTU) and above nothing, since tbf
// polices every byte. The other cases are reported, not asserted.
func TestNetnsShapedBandwidth(t *testing.T) {
	if testing.Short() {
		t.Skip("shaped-link measurement takes ~20 s; skipped with -short")
	}
	for _, tc := range []struct {
		name   string
		rate   string
		mbit   float64
		listen string
		bytes  int64
		assert bool
	}{
		{"quic 100mbit", "100mbit", 100, "/ip4/%s/udp/4001/quic-v1", 24 << 20, true},
		{"tcp 100mbit", "100mbit", 100, "/ip4/%s/tcp/4001", 24 << 20, false},
		{"quic 200mbit", "200mbit", 200, "/ip4/%s/udp/4001/quic-v1", 48 << 20, false},
		{"tcp 200mbit", "200mbit", 200, "/ip4/%s/tcp/4001", 48 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newShapedLink(t, tc.rate)
			r := l.probeAcross(t, tc.listen, tc.bytes)
			for _, b := range []struct {
				dir Direction
				r   BandwidthResult
			}{{Upload, r.Upload}, {Download, r.Download}} {
				got := b.r.BitsPerSecond / 1e6
				t.Logf("%s %v: %d bytes in %v = %.1f Mbit/s goodput, %.3f of the %s link (rtt %v)",
					tc.name, b.dir, b.r.Bytes, b.r.Took.Round(time.Millisecond), got, got/tc.mbit, tc.rate, r.RTT)
				if b.r.Bytes != tc.bytes {
					t.Errorf("%v moved %d bytes, want %d", b.dir, b.r.Bytes, tc.bytes)
				}
				if tc.assert && (got < 0.9*tc.mbit || got > 1.1*tc.mbit) {
					t.Errorf("%v goodput %.1f Mbit/s, want within 10%% of %.0f", b.dir, got, tc.mbit)
				}
			}
		})
	}
}
