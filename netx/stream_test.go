package netx

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

const testFrames = protocol.ID("/dtrain/test/frames/1.0.0")

// newLoopbackHost starts a QUIC-only libp2p host on 127.0.0.1, closed when
// the test ends.
func newLoopbackHost(t testing.TB, listen string) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings(listen))
	if err != nil {
		t.Fatalf("start host: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// connectedPair returns two hosts, a already connected to b.
func connectedPair(t testing.TB, listen string) (a, b host.Host) {
	t.Helper()
	a, b = newLoopbackHost(t, listen), newLoopbackHost(t, listen)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return a, b
}

func openFramed(t *testing.T, a, b host.Host, max int) *FramedStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := a.NewStream(ctx, b.ID(), testFrames)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	t.Cleanup(func() { _ = s.Reset() })
	return NewFramedStream(s, max, 5*time.Second)
}

// TestBadFramesResetOnlyTheirStream sends an oversized and a truncated
// frame on their own streams and checks that the server refuses each with
// the right error while an echo stream on the same connection keeps going.
func TestBadFramesResetOnlyTheirStream(t *testing.T) {
	a, b := connectedPair(t, "/ip4/127.0.0.1/udp/0/quic-v1")
	const max = 1024
	serverErrs := make(chan error, 8)
	b.SetStreamHandler(testFrames, func(s network.Stream) {
		fs := NewFramedStream(s, max, 5*time.Second)
		ctx := context.Background()
		for {
			p, err := fs.ReadFrame(ctx)
			if err != nil {
				serverErrs <- err
				return
			}
			if err := fs.WriteFrame(ctx, p); err != nil {
				serverErrs <- err
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	echo := openFramed(t, a, b, max)
	roundTrip := func(msg string) {
		t.Helper()
		if err := echo.WriteFrame(ctx, []byte(msg)); err != nil {
			t.Fatalf("echo write %q: %v", msg, err)
		}
		got, err := echo.ReadFrame(ctx)
		if err != nil || string(got) != msg {
			t.Fatalf("echo read: %q, %v; want %q", got, err, msg)
		}
	}
	roundTrip("before")

	for _, tc := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"oversized", binary.BigEndian.AppendUint32(nil, 1<<30), ErrFrameTooLarge},
		{"truncated", append(binary.BigEndian.AppendUint32(nil, 100), "only ten b"...), ErrTruncatedFrame},
	} {
		bad := openFramed(t, a, b, max)
		if _, err := bad.Stream().Write(tc.raw); err != nil {
			t.Fatalf("%s: raw write: %v", tc.name, err)
		}
		if err := bad.CloseWrite(); err != nil {
			t.Fatalf("%s: close write: %v", tc.name, err)
		}
		select {
		case err := <-serverErrs:
			if !errors.Is(err, tc.want) {
				t.Fatalf("%s: server got %v, want %v", tc.name, err, tc.want)
			}
		case <-ctx.Done():
			t.Fatalf("%s: server never rejected the frame", tc.name)
		}
		if _, err := bad.ReadFrame(ctx); err == nil {
			t.Fatalf("%s: rejected stream still delivers frames", tc.name)
		}
		roundTrip("after " + tc.name)
	}
	if n := len(a.Network().ConnsToPeer(b.ID())); n != 1 {
		t.Fatalf("%d connections to the server after the bad frames, want the original 1", n)
	}
	if err := echo.WriteFrame(ctx, make([]byte, max+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized write: %v, want ErrFrameTooLarge", err)
	}
	roundTrip("after refusing an oversized write")
}

// TestVanishedPeerErrorsByDeadline covers a peer that stops reading or
// writing without closing, and one whose host goes away: every call must
// return an error no later than its deadline plus scheduling slack.
func TestVanishedPeerErrorsByDeadline(t *testing.T) {
	const deadline = 500 * time.Millisecond
	const slack = 400 * time.Millisecond
	a, b := connectedPair(t, "/ip4/127.0.0.1/udp/0/quic-v1")
	hold := make(chan struct{})
	defer close(hold)
	b.SetStreamHandler(testFrames, func(s network.Stream) {
		<-hold // neither read nor write: a peer that hangs
		_ = s.Reset()
	})

	t.Run("read from a silent peer", func(t *testing.T) {
		fs := openFramed(t, a, b, 1<<20)
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		_, err := fs.ReadFrame(ctx)
		assertErrorBy(t, err, time.Since(start), deadline+slack)
	})
	t.Run("read with the stream's own timeout", func(t *testing.T) {
		s, err := a.NewStream(context.Background(), b.ID(), testFrames)
		if err != nil {
			t.Fatal(err)
		}
		fs := NewFramedStream(s, 1<<20, deadline)
		start := time.Now()
		_, err = fs.ReadFrame(context.Background())
		assertErrorBy(t, err, time.Since(start), deadline+slack)
	})
	t.Run("write to a peer that stopped reading", func(t *testing.T) {
		fs := openFramed(t, a, b, 1<<20)
		ctx, cancel := context.WithTimeout(context.Background(), 2*deadline)
		defer cancel()
		p := bytes.Repeat([]byte{1}, 1<<20)
		start := time.Now()
		var err error
		for sent := 0; err == nil && sent < 1<<30; sent += len(p) {
			err = fs.WriteFrame(ctx, p) // succeeds until flow control fills
		}
		assertErrorBy(t, err, time.Since(start), 2*deadline+slack)
	})
	t.Run("read after the peer's host closed", func(t *testing.T) {
		c := newLoopbackHost(t, "/ip4/127.0.0.1/udp/0/quic-v1")
		c.SetStreamHandler(testFrames, func(s network.Stream) { <-hold })
		if err := a.Connect(context.Background(), peer.AddrInfo{ID: c.ID(), Addrs: c.Addrs()}); err != nil {
			t.Fatal(err)
		}
		fs := openFramed(t, a, c, 1<<20)
		if err := fs.WriteFrame(context.Background(), []byte("hi")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*deadline)
		defer cancel()
		go func() { time.Sleep(deadline / 2); _ = c.Close() }()
		start := time.Now()
		_, err := fs.ReadFrame(ctx)
		assertErrorBy(t, err, time.Since(start), 5*deadline+slack)
	})
}

func assertErrorBy(t *testing.T, err error, took, limit time.Duration) {
	t.Helper()
	if err == nil {
		t.Fatalf("call returned no error after %v", took)
	}
	if took > limit {
		t.Fatalf("call returned after %v, limit %v: %v", took, limit, err)
	}
	t.Logf("errored after %v (limit %v): %v", took.Round(time.Millisecond), limit, err)
}
