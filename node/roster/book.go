package roster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// GossipType is the gossip message type of a signed roster, its body the
// encoding Sign makes.
const GossipType = "roster"

// ErrStale marks a valid roster older than the one a Book holds: not worth
// relaying, yet no sign of a hostile sender (its sender may lag).
var ErrStale = errors.New("roster: older than the one held")

// BookConfig configures NewBook.
type BookConfig struct {
	// Owner is the run's owner: the key that signs its rosters. It is
	// always admitted.
	Owner peer.ID
	// Run is the run id every roster must name.
	Run string
	// Path is the roster file: read at start, re-read by Reload, and
	// replaced by every newer roster adopted from a peer. Empty: none.
	Path string
	// Write replaces a file atomically (torch.WriteFileAtomic); it must be
	// set when Path is.
	Write func(path string, data []byte) error
}

// Book holds the newest valid roster of a run that a peer has seen, for
// its admission rule to read at every connection without a lock, and
// keeps it in Path. Its methods are safe for concurrent use.
type Book struct {
	cfg BookConfig
	cur atomic.Pointer[held]

	mu       sync.Mutex // serializes adoptions and saves
	fileSeen fileStamp  // the roster file as last read or written
	saveErr  error      // a gossiped roster adopted but not saved, for Run to log

	self    atomic.Value // peer.ID of Loop.Self: its own gossip does not count as heard
	heard   atomic.Int64 // copies of the held version heard since the last publish round
	behind  atomic.Bool  // a peer gossiped an older version
	changed chan struct{}
}

type held struct {
	r   Roster
	enc []byte
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewBook returns the book of cfg's run holding the roster in cfg.Path: a
// file that exists but is not a valid roster of the run signed by its
// owner is an error, a missing one leaves the book empty (it admits the
// owner alone until a roster arrives).
func NewBook(cfg BookConfig) (*Book, error) {
	if cfg.Owner == "" {
		return nil, errors.New("roster: a book needs the run's owner")
	}
	if cfg.Path != "" && cfg.Write == nil {
		return nil, errors.New("roster: a book with a file needs Write")
	}
	b := &Book{cfg: cfg, changed: make(chan struct{}, 1)}
	if _, err := b.Reload(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	select {
	case <-b.changed: // the file's roster is no news to the caller
	default:
	}
	return b, nil
}

// Current returns the roster held, false when none has arrived yet.
func (b *Book) Current() (Roster, bool) {
	h := b.cur.Load()
	if h == nil {
		return Roster{}, false
	}
	return h.r, true
}

// Encoded returns the signed encoding of the roster held, nil when none.
func (b *Book) Encoded() []byte {
	if h := b.cur.Load(); h != nil {
		return h.enc
	}
	return nil
}

// Admits reports whether p is the owner or a member of the roster held.
func (b *Book) Admits(p peer.ID) bool {
	if p == b.cfg.Owner {
		return true
	}
	h := b.cur.Load()
	return h != nil && h.r.Has(p)
}

// Changed is signalled (buffered, one pending at most) whenever the book
// adopts a newer roster.
func (b *Book) Changed() <-chan struct{} { return b.changed }

// Offer adopts enc if it is a valid roster of the run, signed by the
// owner, of a newer version than the one held, and saves it to the
// roster file. It returns whether it adopted enc; an older version is
// ErrStale, the held version again is neither adopted nor an error.
func (b *Book) Offer(enc []byte) (bool, error) {
	r, err := Open(enc, b.cfg.Owner, b.cfg.Run)
	if err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.cur.Load(); h != nil {
		switch {
		case r.Version < h.r.Version:
			return false, fmt.Errorf("%w: version %d, holding %d", ErrStale, r.Version, h.r.Version)
		case r.Version == h.r.Version:
			return false, nil
		}
	}
	// The file is written before the roster is held, so whoever sees the
	// new version through Current finds it saved too.
	var saveErr error
	if b.cfg.Path != "" {
		if err := b.cfg.Write(b.cfg.Path, enc); err != nil {
			saveErr = fmt.Errorf("roster: adopted version %d but could not save it: %w", r.Version, err)
		} else if st, err := os.Stat(b.cfg.Path); err == nil {
			b.fileSeen = fileStamp{st.ModTime(), st.Size()}
		}
	}
	b.cur.Store(&held{r: r, enc: bytes.Clone(enc)})
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return true, saveErr
}

// Reload reads the roster file again when it changed since it was last
// read or written, and offers it: an operator hands a new version to one
// member by replacing its file. A missing file is os.ErrNotExist.
func (b *Book) Reload() (bool, error) {
	if b.cfg.Path == "" {
		return false, nil
	}
	st, err := os.Stat(b.cfg.Path)
	if err != nil {
		return false, fmt.Errorf("roster file: %w", err)
	}
	stamp := fileStamp{st.ModTime(), st.Size()}
	b.mu.Lock()
	same := stamp == b.fileSeen
	b.mu.Unlock()
	if same {
		return false, nil
	}
	enc, err := readBounded(b.cfg.Path)
	if err != nil {
		return false, err
	}
	adopted, err := b.Offer(enc)
	if errors.Is(err, ErrStale) {
		err = nil // a newer version arrived by gossip since the file was written
	}
	if err != nil {
		return false, fmt.Errorf("roster file %s: %w", b.cfg.Path, err)
	}
	b.mu.Lock()
	b.fileSeen = stamp
	b.mu.Unlock()
	return adopted, nil
}

// readBounded reads a roster file of at most MaxSize bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("roster file: %w", err)
	}
	defer f.Close()
	enc, err := io.ReadAll(io.LimitReader(f, int64(MaxSize)+1))
	if err != nil {
		return nil, fmt.Errorf("roster file %s: %w", path, err)
	}
	if len(enc) > MaxSize {
		return nil, fmt.Errorf("roster file %s: %w: over %d bytes", path, ErrInvalid, MaxSize)
	}
	return enc, nil
}

// Receive is the gossip validator of GossipType messages: it offers the
// body, counts a copy of the held version heard from another peer, and
// notes a peer that gossips an older one (Run answers it with the held
// roster). Invalid bodies are errors, older versions ErrStale.
func (b *Book) Receive(from peer.ID, body []byte) error {
	adopted, err := b.Offer(body)
	switch {
	case errors.Is(err, ErrStale):
		b.behind.Store(true)
		return err
	case err != nil && !adopted:
		return err
	case err != nil: // adopted, not saved: relay it all the same; Run logs the error
		b.mu.Lock()
		b.saveErr = err
		b.mu.Unlock()
	case !adopted && from != b.self.Load():
		b.heard.Add(1)
	}
	return nil
}

// Loop configures Run.
type Loop struct {
	// Self is this peer: its own messages, which its gossip validator
	// sees too, do not count as heard.
	Self peer.ID
	// Publish gossips a signed roster on the run's topic.
	Publish func(ctx context.Context, enc []byte) error
	// Adopted is called after the book adopts a newer roster (to drop
	// connections with peers no longer admitted).
	Adopted func(Roster)
	// Every is the republish round: 60 s when 0. Reload is how often the
	// roster file is re-read: 5 s when 0.
	Every, Reload time.Duration
	// Log receives the problems Run meets; nil drops them.
	Log func(err error, msg string)
}

// Run keeps the run's peers on the newest roster until ctx ends. Rosters
// spread by gossip once, when a peer adopts one from its file; after that
// each peer republishes its roster once a round (at a random point of the
// round's second half) unless it heard another peer publish the same
// version during the round, so a settled swarm sends about one copy per
// round however many peers it has (the suppression of Trickle, RFC 6206).
// A peer that hears an older version publishes its own at once (at most
// once per quarter round), so a peer that missed an update, or was
// offline, catches up within seconds of its next message.
func (b *Book) Run(ctx context.Context, l Loop) {
	b.self.Store(l.Self)
	every, reload := l.Every, l.Reload
	if every <= 0 {
		every = time.Minute
	}
	if reload <= 0 {
		reload = 5 * time.Second
	}
	logf := l.Log
	if logf == nil {
		logf = func(error, string) {}
	}
	publish := func() {
		if enc := b.Encoded(); enc != nil {
			if err := l.Publish(ctx, enc); err != nil && ctx.Err() == nil {
				logf(err, "publish roster")
			}
		}
	}
	round := func() *time.Timer {
		return time.NewTimer(every/2 + rand.N(every/2+1))
	}
	rt, reloadT := round(), time.NewTicker(reload)
	answerT := time.NewTicker(every / 4)
	defer rt.Stop()
	defer reloadT.Stop()
	defer answerT.Stop()
	fromFile := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-reloadT.C:
			adopted, err := b.Reload()
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				logf(err, "roster file refused")
			}
			fromFile = fromFile || adopted
		case <-b.changed:
			b.mu.Lock()
			err := b.saveErr
			b.saveErr = nil
			b.mu.Unlock()
			if err != nil {
				logf(err, "roster not saved")
			}
			if r, ok := b.Current(); ok && l.Adopted != nil {
				l.Adopted(r)
			}
			if fromFile {
				publish() // nobody else has it yet
				fromFile = false
			}
		case <-answerT.C:
			if b.behind.Swap(false) {
				publish()
			}
		case <-rt.C:
			if b.heard.Swap(0) == 0 {
				publish()
			}
			rt = round()
		}
	}
}
