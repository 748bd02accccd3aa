package epochnet

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/roster"
)

// rosterPeer is a node of a roster run: its key, book, node and topic.
type rosterPeer struct {
	id   peer.ID
	file string
	book *roster.Book
	node *netx.Node
}

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o644) }

// A run admits by its owner's roster end to end: a stranger is refused by
// its members; once the owner hands a roster that lists it to one member,
// that roster spreads by gossip and the stranger joins; a later roster
// that drops it makes every member close its connections.
func TestRosterAdmitsAndDrops(t *testing.T) {
	rosterEvery, rosterReload = 400*time.Millisecond, 100*time.Millisecond
	defer func() { rosterEvery, rosterReload = 0, 0 }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ownerKey, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	owner, _ := peer.IDFromPrivateKey(ownerKey)
	dir := t.TempDir()
	keys := make([]crypto.PrivKey, 3)
	ids := make([]peer.ID, 3)
	for i := range keys {
		keys[i], _, _ = crypto.GenerateEd25519Key(rand.Reader)
		ids[i], _ = peer.IDFromPrivateKey(keys[i])
	}
	sign := func(version uint64, members ...peer.ID) []byte {
		r, err := roster.New("r", version, members)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := roster.Sign(r, ownerKey)
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	v1 := sign(1, ids[0], ids[1]) // peer 2 is a stranger to v1
	peers := make([]*rosterPeer, 3)
	var boot []string
	for i := range peers {
		p := &rosterPeer{id: ids[i], file: filepath.Join(dir, ids[i].String())}
		if err := writeFile(p.file, v1); err != nil {
			t.Fatal(err)
		}
		if p.book, err = roster.NewBook(roster.BookConfig{Owner: owner, Run: "r", Path: p.file, Write: writeFile}); err != nil {
			t.Fatal(err)
		}
		keyFile := filepath.Join(dir, ids[i].String()+".key")
		kb, _ := crypto.MarshalPrivateKey(keys[i])
		if err := os.WriteFile(keyFile, kb, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := netx.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, DHTMode: netx.DHTServer,
			KeyFile: keyFile, Admit: p.book.Admits}
		if i == 1 {
			cfg.Bootstrap = boot
		}
		if p.node, err = netx.New(ctx, cfg); err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
		defer p.node.Close()
		if i == 0 {
			boot = []string{p.node.Host().Addrs()[0].String() + "/p2p/" + p.node.ID().String()}
		}
		topic, err := p.node.JoinGossip(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		Handle(topic, p.book)
		go Read(ctx, topic, make(chan Inbound, 1024))
		go KeepRoster(ctx, p.node, topic, p.book, zerolog.Nop())
		peers[i] = p
	}
	connected := func(a, b *rosterPeer) bool {
		return a.node.Host().Network().Connectedness(b.id) == network.Connected
	}
	dial := func(from, to *rosterPeer) error {
		return from.node.Host().Connect(ctx, peer.AddrInfo{ID: to.id, Addrs: to.node.Host().Addrs()})
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out: %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	version := func(p *rosterPeer) uint64 { r, _ := p.book.Current(); return r.Version }

	// The stranger is refused both ways by both members.
	for _, m := range peers[:2] {
		_ = dial(peers[2], m)
		_ = dial(m, peers[2])
	}
	time.Sleep(300 * time.Millisecond)
	for i, m := range peers[:2] {
		if connected(m, peers[2]) {
			t.Fatalf("member %d holds a connection with a stranger", i)
		}
	}
	waitFor("members connect", func() bool { return connected(peers[0], peers[1]) })

	// The owner hands version 2, which lists the stranger, to member 0
	// and to the newcomer; member 1 learns it by gossip.
	v2 := sign(2, ids...)
	for _, p := range []*rosterPeer{peers[0], peers[2]} {
		if err := writeFile(p.file, v2); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	waitFor("member 1 adopts version 2", func() bool { return version(peers[1]) == 2 })
	t.Logf("version 2 reached member 1 in %v", time.Since(start).Round(time.Millisecond))
	if b, _ := os.ReadFile(peers[1].file); string(b) != string(v2) {
		t.Error("member 1 did not save version 2 in its roster file")
	}
	waitFor("the newcomer holds version 2", func() bool { return version(peers[2]) == 2 })
	if err := dial(peers[2], peers[1]); err != nil {
		t.Fatalf("the newcomer could not connect to member 1 after version 2: %v", err)
	}
	waitFor("the newcomer stays connected", func() bool { return connected(peers[1], peers[2]) })

	// Version 3 drops it again; member 1 gets it from its file, member 0
	// by gossip, and both close their connections with it.
	if err := dial(peers[2], peers[0]); err != nil {
		t.Fatalf("the newcomer could not connect to member 0: %v", err)
	}
	if err := writeFile(peers[1].file, sign(3, ids[0], ids[1])); err != nil {
		t.Fatal(err)
	}
	waitFor("both members adopt version 3", func() bool { return version(peers[0]) == 3 && version(peers[1]) == 3 })
	waitFor("both members drop the newcomer", func() bool { return !connected(peers[0], peers[2]) && !connected(peers[1], peers[2]) })
	if err := dial(peers[2], peers[0]); err == nil {
		time.Sleep(300 * time.Millisecond)
		if connected(peers[0], peers[2]) {
			t.Fatal("a dropped peer reconnected")
		}
	}
}
