package miner

import (
	"testing"

	"github.com/dtrain-dev/dtrain/node/hub"
)

// The Hub token goes to an endpoint a config file names only when it is
// the default Hub or $HF_ENDPOINT names it too: a shared config cannot
// send the operator's token elsewhere (issue 17).
func TestTokenEndpoint(t *testing.T) {
	t.Setenv("HF_ENDPOINT", "")
	for _, tc := range []struct {
		env, endpoint string
		want          bool
	}{
		{"", "https://huggingface.co", true},
		{"", "https://huggingface.co/", true},
		{"", "https://evil.example", false},
		{"https://mirror.example/", "https://mirror.example", true},
		{"https://mirror.example", "https://evil.example", false},
	} {
		t.Setenv("HF_ENDPOINT", tc.env)
		if got := hub.TokenAllowed(tc.endpoint); got != tc.want {
			t.Errorf("HF_ENDPOINT=%q, hub.endpoint %q: token %v, want %v", tc.env, tc.endpoint, got, tc.want)
		}
	}
}

// The Hub uploader is drawn anew every epoch: no peer id ranks first in
// every epoch, so a ground low id that never uploads cannot silence the
// run's uploads (issue 17).
func TestUploaderRankChangesEveryEpoch(t *testing.T) {
	ids := []string{"12D3KooWaaa", "12D3KooWbbb", "12D3KooWccc", "12D3KooWddd"}
	firsts := map[string]int{}
	for e := uint64(1); e <= 200; e++ {
		best := ids[0]
		for _, id := range ids[1:] {
			if uploaderRank("run", e, id) < uploaderRank("run", e, best) {
				best = id
			}
		}
		firsts[best]++
	}
	for _, id := range ids {
		// 50 expected of 200; 20 is over 4 standard deviations below.
		if firsts[id] < 20 {
			t.Errorf("peer %s ranked first in %d of 200 epochs: %v", id, firsts[id], firsts)
		}
	}
}
