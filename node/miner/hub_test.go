package miner

import (
	"context"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/hub"
	"github.com/dtrain-dev/dtrain/node/hub/hubtest"
)

// TestHubPublishAndFallback: a miner publishes its model and state every
// two epochs as a commit tagged <run>.<epoch> (an in-memory Hub stands in
// for huggingface.co), its last upload finished before Run returns, and a
// later miner that finds no peer loads the newest published state and
// goes on from its epoch.
func TestHubPublishAndFallback(t *testing.T) {
	srv := hubtest.New(t)
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	cfg := tinyMiner("diloco")
	cfg.Swarm.MaxEpochs = 3 // the first miner publishes epoch 2, the second starts there and ends at 3
	cfg.Swarm.MinGroup, cfg.Swarm.MatchSeconds = 1, 1
	cfg.Hub.Repo, cfg.Hub.Endpoint, cfg.Hub.UploadEvery = "org/tiny", srv.URL(), 2
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	first := newHarness(t, ctx, cfg)
	first.start(nil)
	first.wait()
	tag := hub.EpochTag(cfg.RunID, 2)
	if _, ok := srv.Tags("org/tiny")[tag]; !ok {
		t.Fatalf("tags %v, want %s", srv.Tags("org/tiny"), tag)
	}
	for _, f := range []string{stateFile, "config.json", "model.safetensors"} {
		if _, ok := srv.File("org/tiny", tag, f); !ok {
			t.Errorf("%s holds no %s", tag, f)
		}
	}

	second := newHarness(t, ctx, cfg)
	second.start(nil)
	events := second.wait()[0]
	if len(events) == 0 || events[0].Epoch != 2 {
		t.Fatalf("the second miner's epochs %+v, want it to go on from the published epoch 2", events)
	}
	if n := srv.Count("/commit/"); n != 1 {
		t.Errorf("%d commits, want 1: the state loaded from the hub is not uploaded again", n)
	}
}
