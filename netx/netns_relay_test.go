package netx

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

const (
	envHelperPeer   = "DTRAIN_NETNS_PEER"   // relay client: the private peer's id
	envHelperDirect = "DTRAIN_NETNS_DIRECT" // relay client: the private peer's own address, which must not be reachable
)

// runRelayHelper is the helper body for the relay test's roles: a public
// relay, a private peer behind NAT that reserves a slot on it, and a public
// client that reaches the private peer only through the relay.
func runRelayHelper(ctx context.Context, role string) error {
	switch role {
	case "relay":
		// A public node as `dtrain bootstrap` runs it: netx with the relay
		// service opted in.
		cfg := DefaultConfig()
		cfg.ListenAddrs, cfg.RelayService, cfg.DHTMode = []string{os.Getenv(envHelperAddr)}, true, DHTServer
		n, err := New(ctx, cfg)
		if err != nil {
			return err
		}
		defer n.Close()
		fmt.Printf("%sid %s\n", helperPrefix, n.ID())
		waitStdin(ctx)
		return nil
	case "private":
		// A miner behind NAT, serving until stdin closes.
		return runNATPeer(ctx)
	case "relayclient":
		return runRelayClient(ctx)
	case "natpeer":
		return runNATPeer(ctx)
	}
	return fmt.Errorf("unknown helper role %q", role)
}

func runRelayClient(ctx context.Context) error {
	priv, err := peer.Decode(os.Getenv(envHelperPeer))
	if err != nil {
		return err
	}
	// A public peer of the run: a netx node that knows only the bootstrap
	// peer (the relay), and finds the private one by its id on the DHT.
	cfg := DefaultConfig()
	cfg.ListenAddrs, cfg.Bootstrap, cfg.DHTMode, cfg.EnableNAT = []string{"/ip4/0.0.0.0/udp/0/quic-v1"}, []string{os.Getenv(envHelperAddr)}, DHTClient, false
	n, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	h := n.Host()
	direct, err := multiaddr.NewMultiaddr(os.Getenv(envHelperDirect))
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = h.Connect(dctx, peer.AddrInfo{ID: priv, Addrs: []multiaddr.Multiaddr{direct}})
	cancel()
	fmt.Printf("%sdirect %v\n", helperPrefix, err == nil)
	h.Peerstore().ClearAddrs(priv)
	found, err := findPeer(ctx, n, priv, false)
	if err != nil {
		return err
	}
	fmt.Printf("%sfound %v\n", helperPrefix, found.Addrs)
	if err := h.Connect(ctx, found); err != nil {
		return fmt.Errorf("connect to the addresses the DHT gave: %w", err)
	}
	rtt, err := Ping(network.WithAllowLimitedConn(ctx, "relay test"), h, priv, netnsProbe)
	if err != nil {
		return fmt.Errorf("ping through relay: %w", err)
	}
	fmt.Printf("%srtt %d\n", helperPrefix, rtt)
	// DCUtR, run by both hosts on a relayed connection, then upgrades it
	// to a direct one through the NAT's mapping (hole punching).
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(200 * time.Millisecond) {
		if slices.ContainsFunc(h.Network().ConnsToPeer(priv), func(c network.Conn) bool { return !c.Stat().Limited }) {
			break
		}
	}
	for _, c := range h.Network().ConnsToPeer(priv) {
		fmt.Printf("%sconn %s limited=%v\n", helperPrefix, c.RemoteMultiaddr(), c.Stat().Limited)
	}
	return nil
}

func waitStdin(ctx context.Context) {
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// startHelper runs the test binary as a helper inside ns and returns the
// value of its first "NETNS id" line; the helper is stopped when the test
// ends.
func startHelper(t *testing.T, ns string, env ...string) string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestNetnsHelperProcess$")
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		timer := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
		_ = cmd.Wait()
		timer.Stop()
	})
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if id, ok := strings.CutPrefix(lines.Text(), helperPrefix+"id "); ok {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return id
		}
		t.Logf("helper in %s: %s", ns, lines.Text())
	}
	t.Fatalf("helper in %s exited without printing its peer id", ns)
	return ""
}

// TestNetnsRelayBehindNAT builds a real NAT: a private peer in its own
// namespace whose only way out is a router namespace that masquerades its
// traffic and drops unsolicited inbound packets. The public side (a relay
// that is the bootstrap peer, and a client, one namespace) cannot dial it.
// With no manual step, the private peer must find itself private (AutoNAT)
// and reserve a relay slot (auto-relay), and the client, knowing only its
// id, must find it on the DHT and reach it through the relay's circuit.
func TestNetnsRelayBehindNAT(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespace tests need root (CAP_NET_ADMIN); skipping")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables not installed (build.sh installs it); skipping the NAT relay test")
	}
	linkSeq++
	id := fmt.Sprintf("%d%02d", os.Getpid()%100000, linkSeq%100)
	pub, nat, priv := "dtrr"+id, "dtrn"+id, "dtrp"+id
	for _, ns := range []string{pub, nat, priv} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Skipf("ip netns add not permitted here (%v: %s); skipping namespace test", err, strings.TrimSpace(string(out)))
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	// The "internet" side must look public: AutoNAT ignores private
	// (RFC 1918) and documentation ranges, and would never find the peer
	// behind the NAT private. No namespace here has a route out of the
	// machine, so these addresses reach only the hosts the test made.
	pubNet := fmt.Sprintf("11.%d.%d", 150+linkSeq%100, os.Getpid()%250)
	privNet := fmt.Sprintf("192.168.%d", os.Getpid()%250)
	wan, lan := "dn"+id, "dm"+id
	mustRun(t, "ip", "link", "add", "dr"+id, "netns", pub, "type", "veth", "peer", "name", wan, "netns", nat)
	mustRun(t, "ip", "link", "add", lan, "netns", nat, "type", "veth", "peer", "name", "dp"+id, "netns", priv)
	for _, end := range []struct{ ns, dev, addr string }{
		{pub, "dr" + id, pubNet + ".1"}, {nat, wan, pubNet + ".2"},
		{nat, lan, privNet + ".1"}, {priv, "dp" + id, privNet + ".2"},
	} {
		mustRun(t, "ip", "-n", end.ns, "link", "set", "lo", "up")
		mustRun(t, "ip", "-n", end.ns, "addr", "add", end.addr+"/24", "dev", end.dev)
		mustRun(t, "ip", "-n", end.ns, "link", "set", end.dev, "up")
	}
	mustRun(t, "ip", "-n", priv, "route", "add", "default", "via", privNet+".1")
	natRouter(t, nat, wan, lan, nil)

	relayAddr := "/ip4/" + pubNet + ".1/udp/4002/quic-v1"
	relayID := startHelper(t, pub, envHelperRole+"=relay", envHelperAddr+"="+relayAddr)
	relayFull := relayAddr + "/p2p/" + relayID
	privID := startHelper(t, priv, envHelperRole+"=private", envHelperAddr+"="+relayFull)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", pub, os.Args[0], "-test.run=^TestNetnsHelperProcess$")
	cmd.Env = append(os.Environ(), envHelperRole+"=relayclient", envHelperAddr+"="+relayFull,
		envHelperPeer+"="+privID, envHelperDirect+"=/ip4/"+privNet+".2/udp/4001/quic-v1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("relay client: %v\n%s", err, out)
	}
	text := string(out)
	t.Logf("relay client output:\n%s", text)
	if !strings.Contains(text, helperPrefix+"direct false") {
		t.Fatalf("the private peer was dialed directly; the NAT is not in the way")
	}
	if !strings.Contains(text, helperPrefix+"rtt ") {
		t.Fatalf("no ping through the relay")
	}
	if !strings.Contains(text, helperPrefix+"found [") || !strings.Contains(text, "/p2p-circuit") || !strings.Contains(text, "limited=true") {
		t.Fatalf("the connection to the private peer is not a relayed (limited) circuit")
	}
	// The router masquerades with Linux conntrack: the mapping keeps the
	// peer's port for every destination, and only replies come in (a
	// port-restricted cone). The public side's dial to the mapped address,
	// timed by DCUtR against the private peer's own, gets through.
	if !strings.Contains(text, "/ip4/"+pubNet+".2/udp/4001/quic-v1 limited=false") {
		t.Fatalf("no direct connection through the NAT's mapping after the relayed one (hole punching)")
	}
}
