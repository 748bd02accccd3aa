package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dtrain-dev/dtrain/netx"
)

func TestFetchSpreadsOverDonors(t *testing.T) {
	blob := randomBlob(t, 24<<20)
	s := newSwarm(t, blob, 3, DonorOptions{})
	got, stats, err := Fetch(testCtx(t, 20*time.Second), s.joiner.Host(), testProto, s.offer, s.ids, FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, blob) {
		t.Fatal("fetched state differs from the offered blob")
	}
	var sum int64
	for _, id := range s.ids {
		if stats.Bytes[id] == 0 {
			t.Errorf("donor %s served nothing: %v", id, stats.Bytes)
		}
		sum += stats.Bytes[id]
	}
	if sum != int64(len(blob)) {
		t.Errorf("donors served %d bytes in all, want %d", sum, len(blob))
	}
	t.Logf("24 MiB from 3 loopback donors in %v (%.0f MB/s), retries %d, per donor %v",
		stats.Took, float64(len(blob))/stats.Took.Seconds()/1e6, stats.Retries, stats.Bytes)
}

// serveInstead makes donor d serve bad under the offer with hash, with the
// manifest of manifestOf; it swaps the offer under the donor's lock, so
// handlers see either the old offer or the new one.
func serveInstead(d *Donor, hash [32]byte, bad, manifestOf []byte, chunk int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, o := range d.offers {
		if o.offer.Hash == hash {
			d.offers[k] = &offered{offer: o.offer, blob: bad, manifests: map[int][][32]byte{chunk: levelOf(manifestOf, chunk)}}
		}
	}
}

// corruptAfterManifest makes donor d serve wrong bytes under an honest
// manifest.
func corruptAfterManifest(d *Donor, hash [32]byte, blob []byte, chunk int) {
	bad := bytes.Clone(blob)
	for off := 0; off < len(bad); off += chunk {
		bad[off] ^= 0xff
	}
	serveInstead(d, hash, bad, blob, chunk)
}

// corruptBeforeManifest makes donor d's manifest describe its wrong bytes.
func corruptBeforeManifest(d *Donor, hash [32]byte, blob []byte, chunk int) {
	bad := bytes.Clone(blob)
	bad[len(bad)/2] ^= 1
	serveInstead(d, hash, bad, bad, chunk)
}

func TestCorruptDonor(t *testing.T) {
	const chunk = 1 << 20
	cases := []struct {
		name       string
		donors     int
		corrupt    func(*Donor, [32]byte, []byte, int)
		noManifest bool
		wantErr    error  // nil: fetch succeeds without the corrupt donor
		wantWhy    string // in the corrupt donor's Dropped entry
		bad        int    // corrupt donors (1 if 0), the first ones
	}{
		{"bad bytes, honest manifest", 3, corruptAfterManifest, false, nil, "corrupt", 0},
		// A donor with its own manifest is dropped when that manifest is
		// checked, that is, when it comes before the first one that hashes
		// to the state, or when it serves its wrong chunk; otherwise it
		// served only good bytes: the fetch succeeds either way.
		{"bad bytes, own manifest", 3, corruptBeforeManifest, false, nil, "", 0},
		// Issue 17: a manifest was adopted by vote, so three donors
		// sending one wrong manifest made the fetch fail; it now proves
		// itself against the state's hash.
		{"three of four donors send one wrong manifest", 4, corruptBeforeManifest, false, nil, "", 3},
		{"no manifest", 1, corruptAfterManifest, true, ErrHashMismatch, "", 0},     // one donor: with two, the honest one may serve every chunk
		{"only donor is bad", 1, corruptBeforeManifest, false, ErrNoDonors, "", 0}, // its manifest is refused before any download
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			blob := randomBlob(t, 8<<20)
			s := newSwarm(t, blob, c.donors, DonorOptions{})
			for i := range max(1, c.bad) {
				c.corrupt(s.donors[i], s.offer.Hash, blob, chunk)
			}
			var partial Partial
			got, stats, err := Fetch(testCtx(t, 20*time.Second), s.joiner.Host(), testProto, s.offer, s.ids,
				FetchOptions{ChunkSize: chunk, NoManifest: c.noManifest, Partial: &partial})
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) || got != nil {
					t.Fatalf("got %d bytes, %v; want %v", len(got), err, c.wantErr)
				}
				if partial.Held() != 0 {
					t.Fatalf("partial keeps %d bytes of a state that failed its hash", partial.Held())
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, blob) {
				t.Fatal("fetched state differs from the offered blob")
			}
			for i := range max(1, c.bad) {
				why, dropped := stats.Dropped[s.ids[i]]
				if c.wantWhy == "" {
					if dropped && !strings.Contains(why, "does not hash to the state") && !strings.Contains(why, "corrupt") {
						t.Fatalf("corrupt donor %d dropped for %q (stats %+v)", i, why, stats)
					}
					continue
				}
				if !strings.Contains(why, c.wantWhy) {
					t.Fatalf("corrupt donor %d dropped for %q, want %q (stats %+v)", i, why, c.wantWhy, stats)
				}
			}
		})
	}
}

func TestBusyDonorServesEveryone(t *testing.T) {
	blob := randomBlob(t, 8<<20)
	s := newSwarm(t, blob, 1, DonorOptions{MaxConcurrent: 1})
	joiners := []*netx.Node{s.joiner, newNode(t), newNode(t)}
	for _, j := range joiners[1:] {
		connect(t, j, s.nodes...)
	}
	ctx := testCtx(t, 20*time.Second)
	var wg sync.WaitGroup
	errs := make([]error, len(joiners))
	retries := make([]int, len(joiners))
	for i, j := range joiners {
		wg.Go(func() {
			got, stats, err := Fetch(ctx, j.Host(), testProto, s.offer, s.ids, FetchOptions{})
			if err == nil && !bytes.Equal(got, blob) {
				err = errors.New("fetched state differs from the offered blob")
			}
			errs[i], retries[i] = err, stats.Retries
		})
	}
	wg.Wait()
	total := 0
	for i, err := range errs {
		if err != nil {
			t.Errorf("fetcher %d: %v", i, err)
		}
		total += retries[i]
	}
	if total == 0 {
		t.Error("no fetcher was ever told busy by a donor serving one download at a time")
	}
	t.Logf("busy retries per fetcher: %v", retries)
}

func TestUnknownHashIsNotFound(t *testing.T) {
	s := newSwarm(t, randomBlob(t, 1<<20), 2, DonorOptions{})
	want := s.offer
	want.Hash = sha256.Sum256([]byte("no such state"))
	for _, noManifest := range []bool{false, true} {
		start := time.Now()
		_, _, err := Fetch(testCtx(t, 10*time.Second), s.joiner.Host(), testProto, want, s.ids, FetchOptions{NoManifest: noManifest})
		if !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrNoDonors) || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("unknown hash (no manifest %v): %v, want not found", noManifest, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("not found took %v", took)
		}
		t.Logf("%v", err)
	}
}

func TestDonorKeepsRecentOffers(t *testing.T) {
	s := newSwarm(t, randomBlob(t, 1<<20), 1, DonorOptions{Keep: 2})
	old := s.offer
	e2 := s.donors[0].Offer(2, randomBlob(t, 1<<20))
	e3blob := randomBlob(t, 1<<20)
	e3 := s.donors[0].Offer(3, e3blob)
	ctx := testCtx(t, 10*time.Second)
	if _, _, err := Fetch(ctx, s.joiner.Host(), testProto, old, s.ids, FetchOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("epoch 1 after epochs 2 and 3: %v, want not found", err)
	}
	for _, o := range []Offer{e2, e3} {
		if _, _, err := Fetch(ctx, s.joiner.Host(), testProto, o, s.ids, FetchOptions{}); err != nil {
			t.Fatalf("epoch %d: %v", o.Epoch, err)
		}
	}
	if got := s.donors[0].Offers(); len(got) != 2 || got[1] != e3 || got[1].Run != "test-run" {
		t.Fatalf("offers %v, want epochs 2 and 3 of test-run", got)
	}
}

func TestCancelReturnsPromptly(t *testing.T) {
	s := newSwarm(t, randomBlob(t, 1<<20), 0, DonorOptions{})
	staller := newNode(t)
	stop := make(chan struct{})
	staller.Host().SetStreamHandler(testProto, func(st network.Stream) {
		<-stop // read nothing, answer nothing
		_ = st.Reset()
	})
	t.Cleanup(func() { close(stop) }) // before the node closes: cleanups run last-in first-out
	connect(t, s.joiner, staller)
	want := Offer{Run: "test-run", Epoch: 1, Size: 8 << 20}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, _, err := Fetch(ctx, s.joiner.Host(), testProto, want, []peer.ID{staller.ID()}, FetchOptions{RequestTimeout: time.Minute})
	if took := time.Since(start); !errors.Is(err, context.Canceled) || took > 2*time.Second {
		t.Fatalf("canceled after 300ms: returned after %v with %v", took, err)
	}
}

func TestResumeKeepsChunks(t *testing.T) {
	blob := randomBlob(t, 16<<20)
	s := newSwarm(t, blob, 2, DonorOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var partial Partial
	opts := FetchOptions{Partial: &partial, Progress: func(done, total int64) {
		if done >= total/2 {
			cancel()
		}
	}}
	if _, _, err := Fetch(ctx, s.joiner.Host(), testProto, s.offer, s.ids, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("first fetch: %v, want canceled", err)
	}
	held := partial.Held()
	if held < int64(len(blob))/2 || held >= int64(len(blob)) {
		t.Fatalf("partial holds %d of %d bytes after cancel at half", held, len(blob))
	}
	// A held chunk that went bad meanwhile is caught by the manifest and
	// fetched again.
	bad := slices.Index(partial.done, true)
	partial.buf[bad*(1<<20)] ^= 1
	held -= 1 << 20
	opts.Progress = nil
	got, stats, err := Fetch(testCtx(t, 20*time.Second), s.joiner.Host(), testProto, s.offer, s.ids, opts)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("resumed fetch: %v (identical %v)", err, bytes.Equal(got, blob))
	}
	var fetched int64
	for _, n := range stats.Bytes {
		fetched += n
	}
	if stats.Resumed != held || fetched != int64(len(blob))-held {
		t.Fatalf("resumed %d (held %d), fetched %d more of %d", stats.Resumed, held, fetched, len(blob))
	}
}

func TestFetchRejectsBadInput(t *testing.T) {
	s := newSwarm(t, randomBlob(t, 1<<16), 1, DonorOptions{})
	ctx := testCtx(t, 5*time.Second)
	cases := []struct {
		name   string
		want   Offer
		donors []peer.ID
		opts   FetchOptions
	}{
		{"zero size", Offer{Run: "r"}, s.ids, FetchOptions{}},
		{"over max size", Offer{Run: "r", Size: 1 << 40}, s.ids, FetchOptions{}},
		{"tiny chunk", s.offer, s.ids, FetchOptions{ChunkSize: 1}},
		{"huge chunk", s.offer, s.ids, FetchOptions{ChunkSize: MaxRequest + 1}},
		{"no donors", s.offer, nil, FetchOptions{}},
		{"only self", s.offer, []peer.ID{s.joiner.ID()}, FetchOptions{}},
	}
	for _, c := range cases {
		if got, _, err := Fetch(ctx, s.joiner.Host(), testProto, c.want, c.donors, c.opts); err == nil || got != nil {
			t.Errorf("%s: got %d bytes, %v; want an error", c.name, len(got), err)
		}
	}
}

// The end game duplicates a chunk another donor is fetching only once that
// attempt is late (lateFactor times the average chunk time); before any
// chunk has arrived, at once.
func TestEndGameDuplicatesOnlyLateChunks(t *testing.T) {
	a, b := &donorState{id: "a"}, &donorState{id: "b"}
	now := time.Now()
	f := &fetch{n: 2, alive: 2, attempts: map[int][]*attempt{}, avoid: make([]peer.ID, 2)}
	f.attempts[1] = []*attempt{{d: a, started: now.Add(-50 * time.Millisecond), cancel: func() {}}}
	if i, _ := f.pickLocked(b, now); i != 1 {
		t.Fatalf("no chunk has arrived yet: picked %d, want a duplicate of chunk 1", i)
	}
	f.chunkTime, f.gotChunks = 300*time.Millisecond, 3 // 100 ms per chunk
	i, wait := f.pickLocked(b, now)
	if i != -1 || wait != 150*time.Millisecond {
		t.Fatalf("attempt 50 ms old, chunks take 100 ms: picked %d, retry in %v; want none, in 150ms", i, wait)
	}
	if i, _ := f.pickLocked(a, now.Add(time.Second)); i != -1 {
		t.Fatalf("donor a duplicated its own attempt (chunk %d)", i)
	}
	if i, _ := f.pickLocked(b, now.Add(151*time.Millisecond)); i != 1 {
		t.Fatalf("attempt 201 ms old: picked %d, want a duplicate of chunk 1", i)
	}
}
