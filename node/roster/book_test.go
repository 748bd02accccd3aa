package roster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// writeFile is a plain write: the tests need no crash safety.
func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o644) }

func signed(t testing.TB, owner crypto.PrivKey, run string, version uint64, members ...peer.ID) []byte {
	t.Helper()
	r, err := New(run, version, members)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Sign(r, owner)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// A book adopts newer versions of its run signed by its owner only, saves
// each to its file, and admits the owner and the members of the version
// it holds.
func TestBookAdoptsNewerOnly(t *testing.T) {
	ownerKey, owner := newKey(t)
	otherKey, _ := newKey(t)
	_, a := newKey(t)
	_, b := newKey(t)
	path := filepath.Join(t.TempDir(), "roster.bin")
	bk, err := NewBook(BookConfig{Owner: owner, Run: "r", Path: path, Write: writeFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := bk.Current(); ok || !bk.Admits(owner) || bk.Admits(a) {
		t.Fatal("an empty book must admit the owner alone")
	}
	v1, v2 := signed(t, ownerKey, "r", 1, a), signed(t, ownerKey, "r", 2, a, b)
	if ok, err := bk.Offer(v1); !ok || err != nil {
		t.Fatalf("v1: %v %v", ok, err)
	}
	if !bk.Admits(a) || bk.Admits(b) {
		t.Fatal("v1 admits a, not b")
	}
	if ok, err := bk.Offer(v1); ok || err != nil {
		t.Fatalf("v1 again: %v %v, want neither adopted nor an error", ok, err)
	}
	if ok, err := bk.Offer(v2); !ok || err != nil {
		t.Fatalf("v2: %v %v", ok, err)
	}
	if _, err := bk.Offer(v1); !errors.Is(err, ErrStale) {
		t.Fatalf("v1 after v2: %v, want ErrStale", err)
	}
	for name, enc := range map[string][]byte{
		"another owner's": signed(t, otherKey, "r", 9, a, b),
		"another run's":   signed(t, ownerKey, "s", 9, a, b),
		"garbage":         []byte("roster"),
	} {
		if ok, err := bk.Offer(enc); ok || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s roster: %v %v, want ErrInvalid", name, ok, err)
		}
	}
	if r, _ := bk.Current(); r.Version != 2 || !bk.Admits(b) {
		t.Fatalf("holding version %d, want 2", r.Version)
	}
	saved, err := os.ReadFile(path)
	if err != nil || string(saved) != string(v2) {
		t.Fatalf("the file holds %d bytes (%v), want version 2", len(saved), err)
	}
	// A new book of the same file starts from version 2.
	again, err := NewBook(BookConfig{Owner: owner, Run: "r", Path: path, Write: writeFile})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := again.Current(); !ok || r.Version != 2 {
		t.Fatalf("restarted book holds %v %v", r.Version, ok)
	}
}

// A roster file that is there but not a valid roster of the run is an
// error at start, not an open run; Reload takes a replaced file and
// ignores one replaced by an older version.
func TestBookFile(t *testing.T) {
	ownerKey, owner := newKey(t)
	otherKey, _ := newKey(t)
	_, a := newKey(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.bin")
	if err := writeFile(bad, signed(t, otherKey, "r", 1, a)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewBook(BookConfig{Owner: owner, Run: "r", Path: bad, Write: writeFile}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a roster file signed by another key: %v, want ErrInvalid", err)
	}
	path := filepath.Join(dir, "roster.bin")
	bk, err := NewBook(BookConfig{Owner: owner, Run: "r", Path: path, Write: writeFile})
	if err != nil {
		t.Fatalf("a missing roster file: %v", err)
	}
	if _, err := bk.Reload(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Reload of a missing file: %v", err)
	}
	if err := writeFile(path, signed(t, ownerKey, "r", 3, a)); err != nil {
		t.Fatal(err)
	}
	if ok, err := bk.Reload(); !ok || err != nil || !bk.Admits(a) {
		t.Fatalf("Reload of version 3: %v %v", ok, err)
	}
	if ok, err := bk.Reload(); ok || err != nil {
		t.Fatalf("Reload of the unchanged file: %v %v", ok, err)
	}
	if err := writeFile(path, signed(t, ownerKey, "r", 2)); err != nil {
		t.Fatal(err)
	}
	if ok, err := bk.Reload(); ok || err != nil || !bk.Admits(a) {
		t.Fatalf("Reload of an older version: %v %v, want it ignored", ok, err)
	}
}

// bus is an in-memory gossip topic between books: a publish reaches
// every other book's Receive.
type bus struct {
	mu    sync.Mutex
	books map[peer.ID]*Book
	sent  atomic.Int64
}

func (u *bus) publish(from peer.ID) func(context.Context, []byte) error {
	return func(_ context.Context, enc []byte) error {
		u.sent.Add(1)
		u.mu.Lock()
		defer u.mu.Unlock()
		for id, b := range u.books {
			if id != from {
				_ = b.Receive(from, enc)
			}
		}
		return nil
	}
}

// A roster handed to one peer's file reaches every peer, a peer that held
// an older version catches up, and a settled swarm of 10 sends far fewer
// copies than one per peer and round.
func TestBookRunSpreads(t *testing.T) {
	ownerKey, owner := newKey(t)
	const n = 10
	ids := make([]peer.ID, n)
	for i := range ids {
		_, ids[i] = newKey(t)
	}
	dir := t.TempDir()
	u := &bus{books: map[peer.ID]*Book{}}
	v1 := signed(t, ownerKey, "r", 1, ids[:n-1]...)
	var adopted [n]atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i, id := range ids {
		path := filepath.Join(dir, id.String())
		if i < n-1 { // the last peer starts with no roster
			if err := writeFile(path, v1); err != nil {
				t.Fatal(err)
			}
		}
		bk, err := NewBook(BookConfig{Owner: owner, Run: "r", Path: path, Write: writeFile})
		if err != nil {
			t.Fatal(err)
		}
		u.books[id] = bk
	}
	const every = 100 * time.Millisecond
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.books[id].Run(ctx, Loop{Self: id, Publish: u.publish(id), Every: every, Reload: every / 4,
				Adopted: func(Roster) { adopted[i].Add(1) }})
		}()
	}
	version := func(id peer.ID) uint64 { r, _ := u.books[id].Current(); return r.Version }
	waitAll := func(v uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for _, id := range ids {
			for version(id) != v {
				if time.Now().After(deadline) {
					t.Fatalf("peer %s holds version %d, want %d", id, version(id), v)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	waitAll(1) // the last peer learns v1 by the rounds
	before := u.sent.Load()
	time.Sleep(20 * every)
	if sent := u.sent.Load() - before; sent > 20*n/3 {
		t.Errorf("settled swarm of %d sent %d copies in 20 rounds, want at most %d", n, sent, 20*n/3)
	} else {
		t.Logf("settled swarm of %d: %d copies in 20 rounds", n, sent)
	}
	// The operator hands version 2 to peer 3 only.
	if err := writeFile(filepath.Join(dir, ids[3].String()), signed(t, ownerKey, "r", 2, ids...)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitAll(2)
	t.Logf("version 2 reached all %d peers in %v", n, time.Since(start).Round(time.Millisecond))
	for i, id := range ids {
		if !u.books[id].Admits(ids[n-1]) {
			t.Errorf("peer %d does not admit the new member", i)
		}
	}
	cancel()
	wg.Wait()
	for i := range adopted {
		if adopted[i].Load() == 0 {
			t.Errorf("peer %d's Adopted was never called", i)
		}
	}
}
