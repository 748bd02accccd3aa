package netx

import (
	"context"
	"fmt"
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

// runNATPeer is a peer behind its own NAT. No manual step: AutoNAT finds
// it private (the relay dials back and fails at the NAT), and the
// auto-relay client reserves a slot on a static relay (the bootstrap peer)
// and announces the circuit address. Then, with envHelperPeer unset, it
// prints its id and serves until stdin closes; with it set, it finds that
// peer's relay address on the DHT, reaches it through the relay and waits
// up to 30 s for hole punching to give a direct connection, printing each
// connection to that peer.
func runNATPeer(ctx context.Context) error {
	cfg := DefaultConfig()
	cfg.ListenAddrs, cfg.Bootstrap, cfg.DHTMode = []string{"/ip4/0.0.0.0/udp/4001/quic-v1"}, strings.Split(os.Getenv(envHelperAddr), ","), DHTClient
	n, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	h := n.Host()
	RegisterProbeHandler(h, netnsProbe, 1<<20)
	for start := time.Now(); !strings.Contains(fmt.Sprint(h.Addrs()), "/p2p-circuit"); time.Sleep(time.Second) {
		if time.Since(start) > 2*time.Minute {
			return fmt.Errorf("no relay address after %v (reachability %v): %v", time.Since(start), n.Reachability(), h.Addrs())
		}
	}
	fmt.Printf("reachability %v, addresses %v, all %v\n", n.Reachability(), h.Addrs(), allAddrs(h))
	other := os.Getenv(envHelperPeer)
	if other == "" { // the first peer: wait to be reached
		fmt.Printf("%sid %s\n", helperPrefix, h.ID())
		waitStdin(ctx)
		return nil
	}
	to, err := peer.Decode(other)
	if err != nil {
		return err
	}
	found, err := findPeer(ctx, n, to, true)
	if err != nil {
		return err
	}
	fmt.Printf("%sfound %v\n", helperPrefix, found.Addrs)
	if err := h.Connect(ctx, found); err != nil {
		return fmt.Errorf("connect to the addresses the DHT gave: %w", err)
	}
	if _, err := Ping(network.WithAllowLimitedConn(ctx, "punch test"), h, to, netnsProbe); err != nil {
		return fmt.Errorf("ping through relay: %w", err)
	}
	direct := func(c network.Conn) bool { return !c.Stat().Limited }
	start := time.Now()
	for time.Since(start) < 30*time.Second && !slices.ContainsFunc(h.Network().ConnsToPeer(to), direct) {
		time.Sleep(200 * time.Millisecond)
	}
	for _, c := range h.Network().ConnsToPeer(to) {
		fmt.Printf("%sconn %s limited=%v\n", helperPrefix, c.RemoteMultiaddr(), c.Stat().Limited)
	}
	fmt.Printf("own addresses after %v: %v; the other's: %v\n", time.Since(start), allAddrs(h), h.Peerstore().Addrs(to))
	if slices.ContainsFunc(h.Network().ConnsToPeer(to), direct) {
		rtt, err := Ping(ctx, h, to, netnsProbe) // a direct connection needs no permission
		fmt.Printf("%sdirect after %v, ping %v %v\n", helperPrefix, time.Since(start).Round(time.Millisecond), time.Duration(rtt), err)
	}
	return nil
}

// punchObservers is how many public bootstrap peers the hole punching
// test gives the peers behind NATs.
const punchObservers = 4

// TestNetnsHolePunchTwoNATs puts two peers each behind its own NAT router
// (namespaces, iptables), with four bootstrap peers serving relays on the
// public side between them. Neither can dial the other; each must find
// itself private and reserve a relay slot with no manual step, and one must
// find the other on the DHT and reach it through the relay. DCUtR must then
// punch a direct path through two Linux masquerading routers (a
// port-restricted cone each: one port per peer for every destination,
// replies only), within 30 s. With ports drawn at random per destination
// (--random-fully, a symmetric NAT) it must not; that case takes 2 minutes
// and runs only with DTRAIN_NETNS_PUNCH=1. (A full-cone NAT cannot be
// built from stock iptables; it is the easier case for hole punching.)
func TestNetnsHolePunchTwoNATs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespace tests need root (CAP_NET_ADMIN); skipping")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables not installed (build.sh installs it); skipping the NAT test")
	}
	for _, tc := range []struct {
		name  string
		masq  []string
		punch int // 1: must punch, 0: must not
	}{
		{"port-restricted", nil, 1},
		{"symmetric", []string{"--random-fully"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.punch == 0 && os.Getenv("DTRAIN_NETNS_PUNCH") == "" {
				t.Skip("set DTRAIN_NETNS_PUNCH=1 to check that symmetric NATs do not punch (2 minutes)")
			}
			pub, peers := natTopology(t, tc.masq)
			// libp2p trusts an address that peers observe it at (the
			// NAT's mapping, which hole punching needs) only once
			// observers at 4 distinct IPs report it
			// (observedaddrs.ActivationThresh). So there are 4 bootstrap
			// peers with the relay service, each at its own public
			// address, as a run on the internet would have 4 or more
			// peers; with only one, no peer behind a NAT ever learns its
			// mapped address and nothing can be punched.
			var boot []string
			for k := range punchObservers {
				ip := fmt.Sprintf("11.200.%d.%d", linkSeq%250, k+1)
				mustRun(t, "ip", "-n", pub.ns, "addr", "add", ip+"/32", "dev", "lo")
				addr := "/ip4/" + ip + "/udp/4002/quic-v1"
				boot = append(boot, addr+"/p2p/"+startHelper(t, pub.ns, envHelperRole+"=relay", envHelperAddr+"="+addr))
			}
			relayFull := strings.Join(boot, ",")
			bID := startHelper(t, peers[1].ns, envHelperRole+"=natpeer", envHelperAddr+"="+relayFull)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "ip", "netns", "exec", peers[0].ns, os.Args[0], "-test.run=^TestNetnsHelperProcess$")
			cmd.Env = append(os.Environ(), envHelperRole+"=natpeer", envHelperAddr+"="+relayFull, envHelperPeer+"="+bID)
			out, err := cmd.Output()
			text := string(out)
			t.Logf("peer A's output:\n%s", text)
			if err != nil {
				t.Fatalf("peer A: %v", err)
			}
			if !strings.Contains(text, "/p2p-circuit limited=true") {
				t.Fatalf("A did not reach B through the relay")
			}
			// B's mapped address on its router: what a punched path uses.
			punched := strings.Contains(text, "/ip4/"+peers[1].wan+"/udp/") && strings.Contains(text, helperPrefix+"direct after")
			t.Logf("%s NATs on both sides: direct connection by hole punching: %v", tc.name, punched)
			if punched != (tc.punch == 1) {
				t.Fatalf("%s NATs: direct connection %v, want %v", tc.name, punched, tc.punch == 1)
			}
		})
	}
}

// natHost is one namespace of natTopology: its name and address (for a
// peer behind a NAT, wan is its router's public address).
type natHost struct{ ns, addr, wan string }

// natTopology builds a public namespace (the relay's, which routes between
// its links) and two private peers, each behind its own router namespace
// that masquerades with masq's extra options and drops unsolicited inbound
// packets. The public side's addresses look public (AutoNAT ignores RFC
// 1918 ones); no namespace has a route out of the machine.
func natTopology(t *testing.T, masq []string) (pub natHost, peers [2]natHost) {
	t.Helper()
	linkSeq++
	id := fmt.Sprintf("%d%02d", os.Getpid()%100000, linkSeq%100)
	pub.ns = "dtpu" + id
	add := func(ns string) {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Skipf("ip netns add not permitted here (%v: %s); skipping namespace test", err, strings.TrimSpace(string(out)))
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		mustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	add(pub.ns)
	mustRun(t, "ip", "netns", "exec", pub.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for k := range peers {
		side := string(rune('a' + k))
		nat, priv := "dtna"+id+side, "dtpr"+id+side
		add(nat)
		add(priv)
		wanNet := fmt.Sprintf("11.%d.%d", 160+k, linkSeq%250)
		lanNet := fmt.Sprintf("192.168.%d", 10+k)
		pubDev, wan, lan, privDev := "dq"+id+side, "dw"+id+side, "dl"+id+side, "dv"+id+side
		mustRun(t, "ip", "link", "add", pubDev, "netns", pub.ns, "type", "veth", "peer", "name", wan, "netns", nat)
		mustRun(t, "ip", "link", "add", lan, "netns", nat, "type", "veth", "peer", "name", privDev, "netns", priv)
		for _, end := range []struct{ ns, dev, addr string }{
			{pub.ns, pubDev, wanNet + ".1"}, {nat, wan, wanNet + ".2"}, {nat, lan, lanNet + ".1"}, {priv, privDev, lanNet + ".2"},
		} {
			mustRun(t, "ip", "-n", end.ns, "addr", "add", end.addr+"/24", "dev", end.dev)
			mustRun(t, "ip", "-n", end.ns, "link", "set", end.dev, "up")
		}
		mustRun(t, "ip", "-n", nat, "route", "add", "default", "via", wanNet+".1")
		mustRun(t, "ip", "-n", priv, "route", "add", "default", "via", lanNet+".1")
		natRouter(t, nat, wan, lan, masq)
		peers[k] = natHost{ns: priv, addr: lanNet + ".2", wan: wanNet + ".2"}
		if k == 0 {
			pub.addr = wanNet + ".1"
		}
	}
	return pub, peers
}

// natRouter makes namespace nat a NAT router from lan out to wan: it
// forwards, masquerades (with masq's extra options) and lets in from wan
// only replies to what went out, as a home router does, to its LAN and to
// itself alike.
//
// The INPUT rules matter for hole punching: without them, a punching
// packet that reaches the router before its own peer's first packet out
// is taken as a new flow to the router itself and committed to conntrack,
// so the peer's packet out then finds its mapping taken and MASQUERADE
// moves it to another port, which the other side never learns. A dropped
// packet leaves no conntrack entry.
func natRouter(t *testing.T, nat, wan, lan string, masq []string) {
	t.Helper()
	mustRun(t, "ip", "netns", "exec", nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	mustRun(t, "ip", append([]string{"netns", "exec", nat, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", wan, "-j", "MASQUERADE"}, masq...)...)
	for _, chain := range [][]string{{"FORWARD", "-i", wan, "-o", lan}, {"INPUT", "-i", wan}} {
		mustRun(t, "ip", append(append([]string{"netns", "exec", nat, "iptables", "-A"}, chain...),
			"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")...)
		mustRun(t, "ip", append(append([]string{"netns", "exec", nat, "iptables", "-A"}, chain...), "-j", "DROP")...)
	}
}

// findPeer looks p up on n's DHT until it is found (with a relay address,
// when circuit is set), retrying for 30 s: the lookup needs the relay in
// the routing table, which the DHT adds once identify has run.
func findPeer(ctx context.Context, n *Node, p peer.ID, circuit bool) (peer.AddrInfo, error) {
	for start := time.Now(); ; time.Sleep(500 * time.Millisecond) {
		found, err := n.DHT().FindPeer(ctx, p)
		if err == nil && (!circuit || strings.Contains(fmt.Sprint(found.Addrs), "/p2p-circuit")) {
			return found, nil
		}
		if time.Since(start) > 30*time.Second {
			return found, fmt.Errorf("find %s on the DHT: %v (found %v)", p, err, found.Addrs)
		}
	}
}

func allAddrs(h interface{}) any {
	if a, ok := h.(interface{ AllAddrs() []multiaddr.Multiaddr }); ok {
		return a.AllAddrs()
	}
	return "?"
}
