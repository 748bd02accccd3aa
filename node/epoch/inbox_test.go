package epoch

import (
	"fmt"
	"testing"

	"github.com/dtrain-dev/dtrain/node/matchmaking"
)

// One sender cannot fill the matchmaking inbox for the others by spreading
// its messages over many matchmaking keys (issue 17): it holds at most
// inboxPerSenderTotal messages and no empty buckets, and an honest peer's
// announcement is still buffered after it; taking a matchmaking's messages
// frees its sender's share.
func TestInboxBoundsEachSender(t *testing.T) {
	var b inbox
	b.init()
	r := &matchmaking.Ready{Run: "x", Peer: "evil", Weight: 1}
	for i := range 100_000 {
		b.put("evil", Match{Key: fmt.Sprintf("r/1/%d/", i), Epoch: 3, Ready: r}, 3)
	}
	if b.held["evil"] != inboxPerSenderTotal || b.total != inboxPerSenderTotal || len(b.byKey) != inboxPerSenderTotal {
		t.Fatalf("one sender holds %d messages (%d in all) in %d buckets, want %d",
			b.held["evil"], b.total, len(b.byKey), inboxPerSenderTotal)
	}
	honest := &matchmaking.Ready{Run: "r/1/h/7", Peer: "good", Weight: 1}
	b.put("good", Match{Key: "r/1/h/7", Epoch: 3, Ready: honest}, 3)
	got := b.take("r/1/h/7", 3)
	if len(got) != 1 || got[0].from != "good" {
		t.Fatalf("the honest announcement was not buffered: %d entries", len(got))
	}
	if _, ok := b.held["good"]; ok || b.total != inboxPerSenderTotal {
		t.Fatalf("after take: held %v, total %d", b.held, b.total)
	}
	b.take("r/1/h/7", 4) // epoch 4: everything of epoch 3 is dropped
	if b.total != 0 || len(b.held) != 0 || len(b.byKey) != 0 {
		t.Fatalf("after epoch 3 is gone: total %d, held %v, %d buckets", b.total, b.held, len(b.byKey))
	}
}
