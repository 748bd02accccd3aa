package netns

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestHostsReachEachOther: every host reaches every other host over TCP at
// its 10.X.Y address, and only through its own link (addresses are unique).
func TestHostsReachEachOther(t *testing.T) {
	needNetns(t)
	tp := newTopology(t, "reach", []Rate{100 * Mbit, 100 * Mbit, 100 * Mbit})
	seen := map[string]bool{}
	for i := range tp.Len() {
		if seen[tp.Addr(i)] {
			t.Fatalf("address %s used twice", tp.Addr(i))
		}
		seen[tp.Addr(i)] = true
		for j := range tp.Len() {
			if i == j {
				continue
			}
			const n = 1 << 20
			if x := send(t, tp, i, j, n); x.Bytes <= 0 || x.Bytes > n {
				t.Errorf("host %d → host %d: sink received %d bytes after the first read, want (0, %d]", i, j, x.Bytes, n)
			}
		}
	}
}

// TestShapedRate: TCP goodput between hosts matches the shaped rate within
// 10%, for uploads limited by the sender's link and downloads limited by
// the receiver's, from 50 Mbit/s to 1 Gbit/s.
func TestShapedRate(t *testing.T) {
	needNetns(t)
	tp := newTopology(t, "rate", []Rate{100 * Mbit, 100 * Mbit, 50 * Mbit, 200 * Mbit, Gbit, Gbit})
	cases := []struct {
		name     string
		src, dst int
		bytes    int64
	}{
		{"100Mbit", 0, 1, 20 << 20},
		{"50Mbit download", 0, 2, 10 << 20},
		{"50Mbit upload", 2, 0, 10 << 20},
		{"200Mbit", 3, 4, 40 << 20},
		{"1Gbit", 4, 5, 200 << 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := min(tp.Rate(c.src), tp.Rate(c.dst))
			x := send(t, tp, c.src, c.dst, c.bytes)
			got := x.goodput()
			ratio := float64(got) / float64(want)
			t.Logf("host %d → host %d: %d bytes in %v: %.1f Mbit/s, %.3f of %v", c.src, c.dst, x.Bytes, x.Elapsed.Round(time.Millisecond), float64(got)/1e6, ratio, want)
			if ratio < 0.9 || ratio > 1.02 {
				t.Errorf("goodput %.1f Mbit/s is %.3f of the shaped %v, want 0.90–1.02", float64(got)/1e6, ratio, want)
			}
		})
	}
}

// TestCloseRemovesEverything: after Close no namespace of the topology is
// left, the root namespace's links are as before, and Close again is a
// no-op.
func TestCloseRemovesEverything(t *testing.T) {
	needNetns(t)
	before := rootLinks(t)
	tp, err := New(context.Background(), "close", []Rate{Mbit, Mbit, Mbit})
	if err != nil {
		t.Fatal(err)
	}
	names := append([]string{tp.sw}, tp.hosts...)
	// A process still running in a host must not keep its namespace alive.
	sleeper := tp.Command(context.Background(), 1, "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sleeper.Wait(); err == nil {
		t.Error("process in a host namespace survived Close")
	}
	if err := tp.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	left := namespaces(t)
	for _, n := range names {
		if slices.Contains(left, n) {
			t.Errorf("namespace %s left after Close", n)
		}
	}
	if after := rootLinks(t); !slices.Equal(before, after) {
		t.Errorf("root namespace links changed: before %v, after %v", before, after)
	}
}

// TestCloseAfterPartialBuild: when building fails half way, everything
// built so far is removed.
func TestCloseAfterPartialBuild(t *testing.T) {
	needNetns(t)
	ctx := context.Background()
	tp := &Topology{name: "partial", rates: []Rate{Mbit, Mbit, Mbit}}
	if err := tp.reserve(ctx); err != nil {
		t.Fatal(err)
	}
	// Take host 1's name so building fails after host 0 is complete.
	blocker := tp.sw + "-h1"
	if err := run(ctx, "ip", "netns", "add", blocker); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = run(ctx, "ip", "netns", "del", blocker) }()
	if err := tp.build(ctx); err == nil {
		t.Fatal("build succeeded with host 1's namespace taken")
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	left := namespaces(t)
	for _, n := range []string{tp.sw, tp.sw + "-h0"} {
		if slices.Contains(left, n) {
			t.Errorf("namespace %s left after Close", n)
		}
	}
	if !slices.Contains(left, blocker) {
		t.Errorf("Close deleted %s, which the topology did not create", blocker)
	}
}

// TestConcurrentTopologiesGetDistinctSubnets: topologies built at the same
// time never share a subnet.
func TestConcurrentTopologiesGetDistinctSubnets(t *testing.T) {
	needNetns(t)
	const k = 6
	tps := make(chan *Topology, k)
	for range k {
		go func() {
			tp, err := New(context.Background(), "conc", []Rate{Mbit})
			if err != nil {
				t.Error(err)
			}
			tps <- tp
		}()
	}
	subnets := map[string]bool{}
	for range k {
		tp := <-tps
		if tp == nil {
			continue
		}
		t.Cleanup(func() { _ = tp.Close() })
		if subnets[tp.subnet] {
			t.Errorf("subnet %s handed out twice", tp.subnet)
		}
		subnets[tp.subnet] = true
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	cases := []struct {
		name  string
		rates []Rate
	}{
		{"Upper", []Rate{Mbit}},
		{"ok", nil},
		{"ok", []Rate{Mbit, 0}},
		{"a-name-much-too-long-for-a-label", []Rate{Mbit}},
	}
	for _, c := range cases {
		if tp, err := New(context.Background(), c.name, c.rates); err == nil {
			_ = tp.Close()
			t.Errorf("New(%q, %v) succeeded", c.name, c.rates)
		}
	}
}

func TestRateString(t *testing.T) {
	for r, want := range map[Rate]string{200 * Mbit: "200Mbit", Gbit: "1Gbit", 1500 * Kbit: "1500Kbit", 7: "7bit"} {
		if got := r.String(); got != want {
			t.Errorf("Rate(%d).String() = %q, want %q", int64(r), got, want)
		}
	}
}

func newTopology(t *testing.T, name string, rates []Rate) *Topology {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tp, err := New(ctx, name, rates)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tp.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tp
}

func namespaces(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// rootLinks lists the root namespace's interface names, sorted.
func rootLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link: %v", err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	slices.Sort(names)
	return names
}
