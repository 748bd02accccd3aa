package validator

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/hub"
	"github.com/dtrain-dev/dtrain/node/hub/hubtest"
	"github.com/dtrain-dev/dtrain/node/state"
	"github.com/dtrain-dev/dtrain/torch"
)

// A validator publishes the swarm's state as an HF checkpoint that loads
// back with the same parameters, the state blob miners load, and a model
// card, in one commit tagged <run>.<epoch>; a state that does not hash to
// the swarm's is not published.
func TestPublishCheckpoint(t *testing.T) {
	srv := hubtest.New(t)
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	c, err := hub.New(hub.WithEndpoint(srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	mc := torch.NewConfig(1, 2, 16, 16, 64)
	m, err := torch.NewModel(mc, torch.CPU, 3)
	if err != nil {
		t.Fatal(err)
	}
	params := make([]float32, m.NumParams())
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.Params(params))
	m.Close()
	snap := state.Snapshot{Mode: state.DiLoCo, Epoch: 4, Step: 40, Params: params, Momentum: make([]float32, len(params))}
	blob, err := snap.Marshal()
	must(err)
	cp := Checkpoint{Repo: "org/run", State: snap, Hash: state.Hash(blob), Model: mc,
		Card: hub.Card{License: "apache-2.0", TokensSeen: 9000, Data: "builtin"},
		Val:  markovData(t, 4096, 64, 8, 5), ValWindows: 16, Micro: 4}
	ctx := context.Background()
	sha, err := PublishCheckpoint(ctx, c, "r1", cp)
	must(err)
	if got := srv.Tags("org/run")["r1.4"]; got != sha {
		t.Fatalf("tags %v, want r1.4 at %s", srv.Tags("org/run"), sha)
	}
	card, ok := srv.File("org/run", "r1.4", "README.md")
	if !ok || !strings.HasPrefix(string(card), "---\nlicense: apache-2.0\n") || !strings.Contains(string(card), "| held-out loss | ") || !strings.Contains(string(card), "on 128 held-out tokens") ||
		!strings.Contains(string(card), `revision="r1.4"`) {
		t.Errorf("model card:\n%s", card)
	}
	got, ok := srv.File("org/run", "r1.4", StateFile)
	if !ok || state.Hash(got) != cp.Hash {
		t.Error("the published state blob is not the swarm's")
	}
	dir, err := c.Download(ctx, "org/run", "r1.4", []string{"config.json", "model.safetensors"})
	must(err)
	loaded, err := torch.LoadModel(dir, torch.CPU)
	must(err)
	defer loaded.Close()
	back := make([]float32, loaded.NumParams())
	must(loaded.Params(back))
	for i := range back {
		if math.Float32bits(back[i]) != math.Float32bits(params[i]) {
			t.Fatalf("parameter %d: %v published, %v held", i, back[i], params[i])
		}
	}
	bad := cp
	bad.Hash[0] ^= 1
	bad.State.Epoch = 5
	if _, err := PublishCheckpoint(ctx, c, "r1", bad); err == nil || !strings.Contains(err.Error(), "not the swarm's") {
		t.Errorf("a state that is not the swarm's: %v", err)
	}
	if _, ok := srv.Tags("org/run")["r1.5"]; ok {
		t.Error("the wrong state was tagged")
	}
}

// A Hub that answers 500, or one that hangs, makes a publish fail within
// the client's retries and timeouts: an error for the validator to log,
// never a publish that holds the next ones up for good.
func TestPublishCheckpointFailingHub(t *testing.T) {
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	mc := torch.NewConfig(1, 2, 16, 16, 64)
	params := make([]float32, torch.NumParams(mc))
	snap := state.Snapshot{Mode: state.DiLoCo, Epoch: 2, Params: params, Momentum: make([]float32, len(params))}
	blob, err := snap.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cp := Checkpoint{Repo: "org/run", State: snap, Hash: state.Hash(blob), Model: mc}
	release := make(chan struct{})
	for name, h := range map[string]http.HandlerFunc{
		"500": func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) },
		"hang": func(w http.ResponseWriter, req *http.Request) {
			_, _ = io.Copy(io.Discard, req.Body)
			select {
			case <-req.Context().Done():
			case <-release:
			}
		},
	} {
		srv := httptest.NewServer(h)
		c, err := hub.New(hub.WithEndpoint(srv.URL), hub.WithRetry(2, 10*time.Millisecond), hub.WithTimeouts(300*time.Millisecond, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		_, err = PublishCheckpoint(context.Background(), c, "r1", cp)
		if err == nil || time.Since(began) > 10*time.Second {
			t.Errorf("%s: publish returned %v after %v, want an error within seconds", name, err, time.Since(began))
		}
		t.Logf("%s: %v after %v", name, err, time.Since(began).Round(time.Millisecond))
		defer srv.Close()
	}
	close(release)
}
