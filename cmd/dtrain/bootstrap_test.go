package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/netx"
)

// TestBootstrapCommand starts `dtrain bootstrap` on loopback, connects a
// peer to the address it prints, and stops it the way Ctrl-C does.
func TestBootstrapCommand(t *testing.T) {
	key := filepath.Join(t.TempDir(), "boot.key")
	pr, pw := io.Pipe()
	app := newApp()
	app.Writer, app.ErrWriter = pw, io.Discard
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"dtrain", "bootstrap", "--key", key,
			"--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--listen", "/ip4/127.0.0.1/tcp/0"})
		pw.Close()
	}()
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var addrs []string
	for len(addrs) < 2 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("bootstrap exited after printing %q: %v", addrs, <-done)
			}
			addrs = append(addrs, l)
		case <-time.After(20 * time.Second):
			t.Fatalf("bootstrap printed %q in 20 s, want two multiaddrs", addrs)
		}
	}
	if !strings.Contains(addrs[0], "/quic-v1/p2p/") || !strings.Contains(addrs[1], "/tcp/") {
		t.Errorf("printed %q, want the QUIC address first, then TCP, each with /p2p/<id>", addrs)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("identity key: %v, want a 0600 file", err)
	}
	for _, addr := range addrs {
		cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
		n, err := netx.New(cctx, netx.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"},
			Bootstrap: []string{addr}, DHTMode: netx.DHTClient})
		ccancel()
		if err != nil {
			t.Fatalf("peer cannot bootstrap from %s: %v", addr, err)
		}
		infos, _ := netx.ParseAddrInfos([]string{addr})
		if n.Host().Network().Connectedness(infos[0].ID) != network.Connected {
			t.Errorf("peer not connected to the bootstrap node at %s", addr)
		}
		n.Close()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bootstrap exited with %v after its context was cancelled", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("bootstrap did not exit within 15 s of Ctrl-C")
	}
}

// Bad relay limits are usage errors (exit 2), said before anything starts.
func TestBootstrapRelayLimitFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--relay-data", "lots"},
		{"--relay-data", "-1"},
		{"--relay-duration", "-1s"},
	} {
		out, err := run(t, append([]string{"bootstrap", "--key", filepath.Join(t.TempDir(), "k")}, args...)...)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%q: %v (exit %d), output %q; want a usage error naming the flag", args, err, exitCode(err), out)
		}
	}
	for in, want := range map[[2]string]netx.RelayLimit{
		{"128KiB", "2m"}: netx.DefaultRelayLimit,
		{"0", "0"}:       {},
		{"1GiB", "0"}:    {Data: 1 << 30},
	} {
		app := newApp()
		var got netx.RelayLimit
		app.Commands = []*cli.Command{{Name: "x", Flags: bootstrapCommand().Flags, Action: func(c *cli.Context) (err error) {
			got, err = relayLimit(c)
			return err
		}}}
		if err := app.Run([]string{"dtrain", "x", "--relay-data", in[0], "--relay-duration", in[1]}); err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
}
