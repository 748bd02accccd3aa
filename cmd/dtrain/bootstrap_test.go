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
