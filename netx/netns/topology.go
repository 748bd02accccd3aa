package netns

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Interface is the name of each host's link inside its namespace; set
// GLOO_SOCKET_IFNAME (or bind to Addr) to make a program use it.
const Interface = "eth0"

// bridgeName is the bridge inside the switch namespace; the bridge's port
// to host i is "p<i>". Both live only in the switch namespace, so these
// short names never clash with other topologies or the host's interfaces.
const bridgeName = "br0"

// MaxHosts bounds a topology's size: host addresses are 10.X.Y.1 … 10.X.Y.N
// in one /24.
const MaxHosts = 250

// ErrSubnetsExhausted is returned when no free 10.X.Y.0/24 was found for a
// new topology.
var ErrSubnetsExhausted = errors.New("netns: no free subnet for a new topology")

// Topology is a switch namespace with a bridge and N host namespaces, each
// host linked to the bridge by a veth pair shaped with tbf in both
// directions. Create one with New and always Close it.
type Topology struct {
	name   string
	subnet string   // "10.X.Y"
	sw     string   // switch namespace
	hosts  []string // host namespaces, in order
	rates  []Rate

	mu     sync.Mutex
	made   []string // namespaces created so far, for Close
	closed bool
}

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,23}$`)

// New builds a topology named name (lowercase letters, digits and '-', at
// most 24 characters; it only labels the namespaces) with one host per
// entry of rates, host i's link shaped at rates[i] both ways. It picks a
// subnet 10.X.Y.0/24 that no other live topology on this machine uses. On
// error everything created so far is removed.
func New(ctx context.Context, name string, rates []Rate) (*Topology, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("netns: topology name %q: want [a-z0-9-], at most 24 characters", name)
	}
	if len(rates) == 0 || len(rates) > MaxHosts {
		return nil, fmt.Errorf("netns: %d hosts: want 1 to %d", len(rates), MaxHosts)
	}
	for i, r := range rates {
		if r <= 0 {
			return nil, fmt.Errorf("netns: host %d: rate %d must be positive", i, r)
		}
	}
	t := &Topology{name: name, rates: append([]Rate(nil), rates...)}
	if err := t.reserve(ctx); err != nil {
		return nil, err
	}
	if err := t.build(ctx); err != nil {
		if cerr := t.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("tear down: %w", cerr))
		}
		return nil, fmt.Errorf("netns: build topology %s: %w", t.sw, err)
	}
	return t, nil
}

// reserve picks a random 10.X.Y and claims it by creating the switch
// namespace, whose name holds X and Y: `ip netns add` fails when the name
// exists, so two topologies (in this process or another) never share a
// subnet.
func (t *Topology) reserve(ctx context.Context) error {
	for range 64 {
		x, y := 64+rand.IntN(190), rand.IntN(256) // 10.64.0.0–10.253.255.0
		sw := fmt.Sprintf("dt%d-%d-%s", x, y, t.name)
		if !namespaceFree(x, y) {
			continue
		}
		if err := run(ctx, "ip", "netns", "add", sw); err != nil {
			if strings.Contains(err.Error(), "File exists") {
				continue
			}
			return fmt.Errorf("netns: create switch namespace: %w", err)
		}
		t.subnet = fmt.Sprintf("10.%d.%d", x, y)
		t.sw = sw
		t.made = append(t.made, sw)
		return nil
	}
	return ErrSubnetsExhausted
}

// namespaceFree reports whether no namespace claims 10.x.y yet (a claim is
// a name starting "dt<x>-<y>-"); the atomic claim is still `ip netns add`.
func namespaceFree(x, y int) bool {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return true
	}
	prefix := fmt.Sprintf("dt%d-%d-", x, y)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, prefix) {
			return false
		}
	}
	return true
}

func (t *Topology) build(ctx context.Context) error {
	sw := t.sw
	steps := [][]string{
		{"ip", "-n", sw, "link", "set", "lo", "up"},
		{"ip", "-n", sw, "link", "add", "name", bridgeName, "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"ip", "-n", sw, "link", "set", bridgeName, "up"},
	}
	if err := runAll(ctx, steps); err != nil {
		return err
	}
	for i := range t.rates {
		if err := t.addHost(ctx, i); err != nil {
			return fmt.Errorf("host %d: %w", i, err)
		}
	}
	return nil
}

// addHost creates host i's namespace, links it to the bridge and shapes
// both ends of the link.
func (t *Topology) addHost(ctx context.Context, i int) error {
	ns := t.sw + "-h" + strconv.Itoa(i)
	if err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return err
	}
	t.mu.Lock()
	t.made = append(t.made, ns)
	t.mu.Unlock()
	t.hosts = append(t.hosts, ns)

	port := "p" + strconv.Itoa(i)
	burst, limit := tbfParams(t.rates[i])
	tbf := func(ns, dev string) []string {
		return []string{"tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
			"rate", strconv.FormatInt(int64(t.rates[i]), 10) + "bit",
			"burst", strconv.Itoa(burst), "limit", strconv.Itoa(limit)}
	}
	steps := [][]string{
		// Created in the switch namespace with its peer moved straight into
		// the host namespace: neither name ever exists in the root namespace.
		{"ip", "-n", t.sw, "link", "add", "name", port, "type", "veth", "peer", "name", Interface, "netns", ns},
		{"ip", "-n", t.sw, "link", "set", port, "master", bridgeName},
		{"ip", "-n", t.sw, "link", "set", port, "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "addr", "add", t.Addr(i) + "/24", "dev", Interface},
		{"ip", "-n", ns, "link", "set", Interface, "up"},
		tbf(ns, Interface), // host i's upload
		tbf(t.sw, port),    // host i's download
	}
	return runAll(ctx, steps)
}

// Name is the label given to New.
func (t *Topology) Name() string { return t.name }

// Len is the number of hosts.
func (t *Topology) Len() int { return len(t.rates) }

// Addr is host i's IPv4 address (without prefix length), 10.X.Y.(i+1).
func (t *Topology) Addr(i int) string {
	return t.subnet + "." + strconv.Itoa(i+1)
}

// Namespace is the name of host i's network namespace, for `ip netns exec`.
func (t *Topology) Namespace(i int) string { return t.hosts[i] }

// Rate is host i's link rate, each way.
func (t *Topology) Rate(i int) Rate { return t.rates[i] }

// Command returns a command that runs name with args inside host i's
// namespace (`ip netns exec`, which execs the program in place, so killing
// the command kills the program).
func (t *Topology) Command(ctx context.Context, i int, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", t.hosts[i], name}, args...)...)
}

// Close kills any process still running in the topology's namespaces and
// deletes them, which removes the veth pairs and the bridge with them. It
// is safe to call more than once and on a partially built topology.
func (t *Topology) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	made := t.made
	t.mu.Unlock()

	var errs []error
	// Hosts first, the switch last: a failed run leaves the subnet claimed
	// rather than handing it out while hosts of it may linger.
	for i := len(made) - 1; i >= 0; i-- {
		if err := deleteNamespace(made[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteNamespace kills the processes inside ns (all started through this
// topology) and deletes it. Without the kill, `ip netns del` only unlinks
// the name and the namespace lives on with its links until they exit.
func deleteNamespace(ns string) error {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if err := run(context.Background(), "ip", "netns", "del", ns); err != nil {
		return fmt.Errorf("netns: delete namespace: %w", err)
	}
	return nil
}

func runAll(ctx context.Context, steps [][]string) error {
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// run runs a command, folding its output into the error.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
