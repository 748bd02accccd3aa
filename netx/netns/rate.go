package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// Rate is a link rate in bits per second.
type Rate int64

// Common rates.
const (
	Kbit Rate = 1000
	Mbit Rate = 1000 * Kbit
	Gbit Rate = 1000 * Mbit
)

// String writes the rate the way tc does: "200Mbit".
func (r Rate) String() string {
	switch {
	case r >= Gbit && r%Gbit == 0:
		return strconv.FormatInt(int64(r/Gbit), 10) + "Gbit"
	case r >= Mbit && r%Mbit == 0:
		return strconv.FormatInt(int64(r/Mbit), 10) + "Mbit"
	case r >= Kbit && r%Kbit == 0:
		return strconv.FormatInt(int64(r/Kbit), 10) + "Kbit"
	}
	return strconv.FormatInt(int64(r), 10) + "bit"
}

// Duration is how long bytes take to cross a link of rate r.
func (r Rate) Duration(bytes int64) time.Duration {
	return time.Duration(float64(bytes) * 8 / float64(r) * float64(time.Second))
}

// tbfParams returns the bucket (burst) and queue (limit) sizes in bytes for
// a tbf at rate r.
//
// burst: at least 64 KiB so one full GSO/TSO segment from the veth (up to
// 64 KiB) passes whole instead of being split by tbf, and at least 2 ms of
// traffic so tokens are not lost when the qdisc watchdog wakes late (at
// 1 Gbit/s a 50 µs late wakeup is 6 KB; 2 ms is 250 KB). A larger burst only
// lets a transfer run ahead by burst/r (10 ms at 50 Mbit/s), which is noise
// on any transfer the benchmarks time.
//
// limit: 50 ms of traffic, at least 4 bursts. Between namespaces the round
// trip is tens of microseconds, so TCP needs little queue to keep the link
// busy; 50 ms absorbs several senders converging on one host's download
// (an all-reduce's fan-in) without drops that would make goodput depend on
// loss recovery rather than the rate.
func tbfParams(r Rate) (burst, limit int) {
	burst = max(64<<10, int(int64(r)/8*2/1000))
	limit = max(4*burst, int(int64(r)/8*50/1000))
	return burst, limit
}

var (
	availableOnce sync.Once
	availableErr  error
)

// Available returns nil when this process can build topologies: it has the
// ip and tc commands and may create a network namespace and a veth pair
// with a tbf qdisc. Otherwise it says why, for a test or benchmark to skip
// with. The answer is computed once.
func Available() error {
	availableOnce.Do(func() { availableErr = probe() })
	return availableErr
}

func probe() error {
	for _, cmd := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return fmt.Errorf("netns: %s command not found: %w", cmd, err)
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("netns: network namespaces need root (CAP_NET_ADMIN)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns := fmt.Sprintf("dtprobe-%d", os.Getpid())
	if err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return fmt.Errorf("netns: cannot create a network namespace: %w", err)
	}
	defer func() { _ = deleteNamespace(ns) }()
	steps := [][]string{
		{"ip", "-n", ns, "link", "add", "name", "pa", "type", "veth", "peer", "name", "pb"},
		{"ip", "-n", ns, "link", "add", "name", "pbr", "type", "bridge"},
		{"tc", "-n", ns, "qdisc", "add", "dev", "pa", "root", "tbf", "rate", "1mbit", "burst", "64kb", "limit", "256kb"},
	}
	if err := runAll(ctx, steps); err != nil {
		return fmt.Errorf("netns: veth, bridge or tbf unavailable: %w", err)
	}
	return nil
}
