package roster

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func newKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	t.Helper()
	priv, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return priv, id
}

// A roster signed by the run's owner opens for that owner and run only:
// members come back sorted and unique, and any change to the bytes, another
// owner or another run is refused.
func TestSignOpen(t *testing.T) {
	owner, ownerID := newKey(t)
	_, other := newKey(t)
	_, a := newKey(t)
	_, b := newKey(t)
	r, err := New("run-1", 7, []peer.ID{b, a, b})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Sign(r, owner)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(enc, ownerID, "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 7 || len(got.Members) != 2 || !got.Has(a) || !got.Has(b) || got.Has(other) {
		t.Fatalf("opened %+v", got)
	}
	if _, err := Open(enc, other, "run-1"); !errors.Is(err, ErrInvalid) {
		t.Errorf("another owner: %v", err)
	}
	if _, err := Open(enc, ownerID, "run-2"); !errors.Is(err, ErrInvalid) {
		t.Errorf("another run: %v", err)
	}
	for i := range enc {
		bad := bytes.Clone(enc)
		bad[i] ^= 1
		if _, err := Open(bad, ownerID, "run-1"); err == nil {
			t.Fatalf("byte %d changed: opened", i)
		}
	}
	if _, err := Open(enc[:len(enc)-1], ownerID, "run-1"); !errors.Is(err, ErrInvalid) {
		t.Errorf("cut short: %v", err)
	}
}

// New refuses what the encoding cannot hold, and parse refuses members
// out of order even under a valid signature (one roster, one encoding).
func TestBounds(t *testing.T) {
	if _, err := New("", 1, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty run: %v", err)
	}
	if _, err := New("r", 1, []peer.ID{""}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty id: %v", err)
	}
	if _, err := New("r", 1, []peer.ID{peer.ID(bytes.Repeat([]byte{1}, MaxIDLen+1))}); !errors.Is(err, ErrInvalid) {
		t.Errorf("long id: %v", err)
	}
	owner, ownerID := newKey(t)
	r := Roster{Run: "r", Version: 1, Members: []peer.ID{"b", "a"}}
	body := r.body()
	sig, err := owner.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	enc := append(binary.BigEndian.AppendUint16(body, uint16(len(sig))), sig...)
	if _, err := Open(enc, ownerID, "r"); !errors.Is(err, ErrInvalid) {
		t.Errorf("unsorted members under a valid signature: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	owner, ownerID := newKey(f)
	r, _ := New("run", 3, []peer.ID{"a", "bb", "ccc"})
	enc, err := Sign(r, owner)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add([]byte(magic))
	f.Add(append([]byte(magic), 1, 0, 3, 'r', 'u', 'n'))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Open(b, ownerID, "run")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// Only the owner's signed bytes open, and they encode again to
		// themselves.
		again, err := Sign(got, owner)
		if err != nil || !bytes.Equal(again[:len(got.body())], b[:len(got.body())]) {
			t.Fatalf("opened %+v, which does not encode back: %v", got, err)
		}
	})
}
