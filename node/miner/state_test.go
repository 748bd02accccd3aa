package miner

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"testing"

	"github.com/dtrain-dev/dtrain/node/state"
	"github.com/dtrain-dev/dtrain/node/train"
	"github.com/dtrain-dev/dtrain/torch"
)

// bareMiner is a miner with a model and optimizer but no network, enough
// for its state blob.
func bareMiner(t *testing.T, mode string, seed uint64) *Miner {
	t.Helper()
	cfg := tinyMiner(mode)
	cfg.Seed, cfg.OutDir = seed, t.TempDir()
	m := &Miner{cfg: cfg, sched: schedule(cfg), accum: max(1, cfg.AccumSteps())}
	var err error
	if m.model, err = train.NewModel(cfg.Train, torch.Device{}); err != nil {
		t.Fatal(err)
	}
	if m.opt, err = torch.NewAdamW(m.model, train.AdamWConfig(cfg.Optim)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.momentum = make([]float32, m.model.NumParams())
	return m
}

// encodeCurrent encodes the miner's state with its parameters copied off
// the model, as Run does at its start.
func (m *Miner) encodeCurrent() ([]byte, error) {
	params := make([]float32, m.model.NumParams())
	if err := m.model.Params(params); err != nil {
		return nil, err
	}
	return m.encodeState(params)
}

// TestStateRoundTrip: a blob loaded into another miner makes it encode the
// same bytes (same parameters, epoch, step and outer momentum or AdamW
// state), through the checkpoint file too; blobs of the wrong size, mode or
// with a NaN are refused and change nothing.
func TestStateRoundTrip(t *testing.T) {
	for _, mode := range []string{"diloco", "gradients"} {
		a, b := bareMiner(t, mode, 1), bareMiner(t, mode, 2)
		a.epoch, a.step = 7, 21
		for i := range a.momentum {
			a.momentum[i] = float32(i%13) * 0.01
		}
		blob, err := a.encodeCurrent()
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(blob)) != stateSize(mode, a.model.NumParams()) {
			t.Fatalf("%s: blob of %d bytes, stateSize says %d", mode, len(blob), stateSize(mode, a.model.NumParams()))
		}
		before, _ := b.encodeCurrent()
		bad := append([]byte(nil), blob...)
		binary.LittleEndian.PutUint32(bad[state.SnapshotHeaderLen+40:], math.Float32bits(float32(math.NaN())))
		for _, x := range [][]byte{blob[:len(blob)-1], bad} {
			if _, err := b.loadState(x); err == nil {
				t.Fatalf("%s: a broken blob was loaded", mode)
			}
		}
		if after, _ := b.encodeCurrent(); string(after) != string(before) {
			t.Fatalf("%s: a refused blob changed the miner", mode)
		}
		if err := b.saveCheckpoint(blob); err != nil {
			t.Fatal(err)
		}
		ok, err := b.resume()
		if !ok || err != nil {
			t.Fatalf("%s: resume = %v, %v", mode, ok, err)
		}
		again, _ := b.encodeCurrent()
		if string(again) != string(blob) || b.epoch != 7 || b.step != 21 {
			t.Fatalf("%s: loaded miner encodes different bytes (epoch %d, step %d)", mode, b.epoch, b.step)
		}
		if filepath.Base(b.checkpointPath()) != "miner_state.bin" {
			t.Fatal(b.checkpointPath())
		}
	}
	other := bareMiner(t, "gradients", 1)
	blob, _ := bareMiner(t, "diloco", 1).encodeCurrent()
	if _, err := other.loadState(blob); err == nil {
		t.Fatal("a diloco state was loaded by a gradients miner")
	}
}
