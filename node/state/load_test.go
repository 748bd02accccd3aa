package state

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLoadDecodesTheOfferedState: Load returns the snapshot a donor
// offers, decoded, and refuses a well-formed state whose epoch is not the
// one asked for even though its hash is the one asked for (a donor's
// offer of epoch 3 holding a snapshot of epoch 2), and a mode or model
// size other than the caller's.
func TestLoadDecodesTheOfferedState(t *testing.T) {
	donorNode, joiner := newNode(t), newNode(t)
	connect(t, joiner, donorNode)
	d := NewDonor(donorNode, Protocol("load-run"), DonorOptions{Run: "load-run"})
	t.Cleanup(func() { d.Close() })
	want := Snapshot{Mode: DiLoCo, Epoch: 2, Step: 20, Params: []float32{1, 2, 3}, Momentum: []float32{0.5, -1, 0}}
	blob, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d.Offer(2, blob)
	d.Offer(3, slices.Clone(blob)) // the same bytes offered under another epoch
	hash := Hash(blob)
	donors := []string{"not a peer id", donorNode.ID().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	got, gotBlob, _, err := Load(ctx, joiner, "load-run", 2, hash, donors, DiLoCo, 3, FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Epoch != 2 || got.Step != 20 || !slices.Equal(got.Params, want.Params) || !slices.Equal(got.Momentum, want.Momentum) || !slices.Equal(gotBlob, blob) {
		t.Errorf("loaded %+v, want %+v", got, want)
	}
	if _, _, _, err := Load(ctx, joiner, "load-run", 3, hash, donors, DiLoCo, 3, FetchOptions{}); err == nil || !strings.Contains(err.Error(), "epoch 2, not 3") {
		t.Errorf("a state of epoch 2 offered as 3: err %v, want it refused", err)
	}
	if _, _, _, err := Load(ctx, joiner, "load-run", 2, hash, donors, Gradients, 3, FetchOptions{}); err == nil {
		t.Error("a diloco state loaded as a gradients one")
	}
	if _, _, _, err := Load(ctx, joiner, "load-run", 2, hash, donors, DiLoCo, 4, FetchOptions{}); err == nil {
		t.Error("a state of 3 parameters loaded for 4")
	}
}
