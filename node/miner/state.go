package miner

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dtrain-dev/dtrain/node/state"
	"github.com/dtrain-dev/dtrain/node/train"
	"github.com/dtrain-dev/dtrain/torch"
)

// A miner's state at the start of an epoch is one state.Snapshot blob:
// its parameters, step and epoch, and the outer momentum (diloco) or the
// AdamW state (gradients). This file moves it between the blob, the model
// and optimizer, and the checkpoint file.

// stateMode is the snapshot mode of a miner in sync mode mode.
func stateMode(mode string) state.Mode {
	if mode == "diloco" {
		return state.DiLoCo
	}
	return state.Gradients
}

// stateSize is the blob's size for a model of numel parameters in mode.
func stateSize(mode string, numel int64) int64 {
	return state.SnapshotSize(stateMode(mode), numel)
}

// encodeState returns the blob of the miner's current state, whose
// parameters params is (a host copy the caller already holds).
func (m *Miner) encodeState(params []float32) ([]byte, error) {
	if int64(len(params)) != m.model.NumParams() {
		return nil, fmt.Errorf("encode state: %d parameters, the model has %d", len(params), m.model.NumParams())
	}
	s := state.Snapshot{Mode: stateMode(m.cfg.Swarm.Mode), Epoch: m.epoch, Step: m.step, Params: params}
	if s.Mode == state.DiLoCo {
		s.Momentum = m.momentum
		return s.Marshal()
	}
	st, err := m.opt.State()
	if err != nil {
		return nil, err
	}
	s.ExpAvg, s.ExpAvgSq, s.AdamStep = st.ExpAvg, st.ExpAvgSq, st.Step
	return s.Marshal()
}

// loadState checks blob against this miner's model and mode and, only if
// all of it is good, makes it the miner's state. It returns the state's
// parameters, which the model now holds.
func (m *Miner) loadState(blob []byte) ([]float32, error) {
	s, err := state.UnmarshalSnapshot(blob, stateMode(m.cfg.Swarm.Mode), m.model.NumParams())
	if err != nil {
		return nil, err
	}
	if s.Mode == state.Gradients {
		if err := m.opt.SetState(torch.AdamWState{ExpAvg: s.ExpAvg, ExpAvgSq: s.ExpAvgSq, Step: s.AdamStep}); err != nil {
			return nil, err
		}
	}
	if err := m.model.SetParams(s.Params); err != nil {
		return nil, err
	}
	if s.Mode == state.DiLoCo {
		m.momentum = s.Momentum
	}
	m.epoch, m.step = s.Epoch, s.Step
	return s.Params, nil
}

// keepModels is how many of its model checkpoints a miner keeps.
const keepModels = 2

// modelInfo is what a miner writes beside its model checkpoint's HF files.
type modelInfo struct {
	Run       string `json:"run_id"`
	Epoch     uint64 `json:"epoch"`
	Step      int    `json:"step"`
	StateHash string `json:"state_hash"` // the full hash of the state the model is part of
	Saved     string `json:"saved"`
}

// ModelInfoFile is the modelInfo in a miner's model checkpoint.
const ModelInfoFile = "miner.json"

// saveModel keeps the model, the state of hash, as an HF checkpoint in
// out_dir every swarm.save_model_every epochs. A failure is logged and
// reported, never fatal: the state checkpoint is what the miner resumes
// from.
func (m *Miner) saveModel(hash [32]byte) {
	every := uint64(m.cfg.Swarm.SaveModelEvery)
	if every == 0 || m.epoch%every != 0 {
		return
	}
	began := time.Now()
	info, err := json.Marshal(modelInfo{Run: m.cfg.RunID, Epoch: m.epoch, Step: m.step, StateHash: hex.EncodeToString(hash[:]),
		Saved: began.UTC().Format(time.RFC3339)})
	dir := ""
	if err == nil {
		dir, err = train.SaveModelCheckpoint(m.cfg.OutDir, m.step, m.model, map[string][]byte{ModelInfoFile: info}, keepModels)
	}
	if err != nil {
		m.log.Warn().Err(err).Uint64("epoch", m.epoch).Msg("could not save the model checkpoint")
		m.event(ErrorEvent{Epoch: m.epoch, Op: "save model", Err: err.Error()})
		return
	}
	m.log.Debug().Str("dir", dir).Uint64("epoch", m.epoch).Dur("took_ms", time.Since(began)).Msg("model saved")
}

// checkpointPath is where a miner keeps its latest epoch state.
func (m *Miner) checkpointPath() string { return filepath.Join(m.cfg.OutDir, "miner_state.bin") }

// saveCheckpoint writes the epoch's state blob atomically, so a miner
// killed at any point restarts from the last finished epoch.
func (m *Miner) saveCheckpoint(blob []byte) error {
	if err := os.MkdirAll(m.cfg.OutDir, 0o755); err != nil {
		return err
	}
	return torch.WriteFileAtomic(m.checkpointPath(), blob)
}

// resume loads the checkpoint in out_dir, if there is one; false if none.
func (m *Miner) resume() (bool, error) {
	blob, err := os.ReadFile(m.checkpointPath())
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := m.loadState(blob); err != nil {
		return false, fmt.Errorf("checkpoint %s: %w", m.checkpointPath(), err)
	}
	return true, nil
}

// stateProto is the stream protocol peers serve and fetch the run's state
// on.
func (m *Miner) stateProto() protocol.ID { return state.Protocol(m.cfg.RunID) }
