package netns

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests run their TCP endpoints as this test binary re-executed inside
// a host namespace (a namespace belongs to a thread, so a whole process in
// `ip netns exec` is the robust way). These variables select the role.
const (
	envRole  = "DTRAIN_NETNS_TEST_ROLE"  // "sink" or "source"
	envAddr  = "DTRAIN_NETNS_TEST_ADDR"  // host:port to listen on or dial
	envBytes = "DTRAIN_NETNS_TEST_BYTES" // source: bytes to send
)

// transfer is what a sink measured: bytes received and the time from the
// first byte to EOF.
type transfer struct {
	Bytes   int64         `json:"bytes"`
	Elapsed time.Duration `json:"elapsed"`
}

// goodput is the transfer's payload rate.
func (x transfer) goodput() Rate {
	return Rate(float64(x.Bytes) * 8 / x.Elapsed.Seconds())
}

func TestMain(m *testing.M) {
	if role := os.Getenv(envRole); role != "" {
		if err := runHelper(role); err != nil {
			fmt.Fprintf(os.Stderr, "netns test helper %s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runHelper(role string) error {
	addr := os.Getenv(envAddr)
	switch role {
	case "sink":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		defer ln.Close()
		fmt.Println("ready")
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		// Time from the first byte, so connection setup is not counted; the
		// first read's bytes arrived before start, so they are not counted
		// either.
		if _, err := c.Read(buf); err != nil {
			return fmt.Errorf("first read: %w", err)
		}
		start := time.Now()
		rest, err := io.CopyBuffer(io.Discard, c, buf)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		return json.NewEncoder(os.Stdout).Encode(transfer{Bytes: rest, Elapsed: time.Since(start)})
	case "source":
		n, err := strconv.ParseInt(os.Getenv(envBytes), 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", envBytes, err)
		}
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := io.CopyN(c, zeros{}, n); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		return c.(*net.TCPConn).CloseWrite()
	}
	return fmt.Errorf("unknown role %q", role)
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// send moves n bytes over TCP from host src to host dst of tp and returns
// what dst measured.
func send(t *testing.T, tp *Topology, src, dst int, n int64) transfer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addr := net.JoinHostPort(tp.Addr(dst), "5201")
	sink := tp.Command(ctx, dst, os.Args[0], "-test.run=^$")
	sink.Env = append(os.Environ(), envRole+"=sink", envAddr+"="+addr)
	sink.Stderr = os.Stderr
	out, err := sink.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Start(); err != nil {
		t.Fatalf("start sink in host %d: %v", dst, err)
	}
	defer func() { _ = sink.Wait() }()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("sink in host %d did not start: %q", dst, lines.Text())
	}

	source := tp.Command(ctx, src, os.Args[0], "-test.run=^$")
	source.Env = append(os.Environ(), envRole+"=source", envAddr+"="+addr, envBytes+"="+strconv.FormatInt(n, 10))
	if b, err := source.CombinedOutput(); err != nil {
		t.Fatalf("send %d bytes from host %d to %s: %v: %s", n, src, addr, err, strings.TrimSpace(string(b)))
	}
	if !lines.Scan() {
		t.Fatalf("sink in host %d reported nothing: %v", dst, lines.Err())
	}
	var x transfer
	if err := json.Unmarshal(lines.Bytes(), &x); err != nil {
		t.Fatalf("sink report %q: %v", lines.Text(), err)
	}
	return x
}

// needNetns skips the test when topologies cannot be built here.
func needNetns(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
}
