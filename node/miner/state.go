package miner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/dtrain-dev/dtrain/torch"
)

// A miner's state at the start of an epoch is one blob, the same bytes on
// every miner that holds the same state, so its sha256 is both the
// progress report's StateHash (miners compare it) and the state.Offer that
// joiners download. Layout, little-endian:
//
//	magic "DTMS" | version u32 | mode u32 (0 diloco, 1 gradients) |
//	epoch u64 | step u64 | numel u64 |
//	params f32[numel] |
//	diloco:    outer momentum f32[numel]
//	gradients: AdamW exp_avg f32[numel] | exp_avg_sq f32[numel] | adam step u64
//
// What differs between miners that agree (tokens trained, diloco's inner
// AdamW moments, which stay local) is left out. The size is a function of
// (mode, numel), so a joiner knows it before downloading.
const (
	stateMagic   = "DTMS"
	stateVersion = 1
	stateHead    = 4 + 4 + 4 + 8 + 8 + 8
)

// stateSize is the blob's size for a model of numel parameters in mode.
func stateSize(mode string, numel int64) int64 {
	if mode == "diloco" {
		return stateHead + 8*numel
	}
	return stateHead + 12*numel + 8
}

// encodeState returns the blob of the miner's current state.
func (m *Miner) encodeState() ([]byte, error) {
	n := m.model.NumParams()
	b := make([]byte, stateHead, stateSize(m.cfg.Swarm.Mode, n))
	copy(b, stateMagic)
	binary.LittleEndian.PutUint32(b[4:], stateVersion)
	if m.cfg.Swarm.Mode != "diloco" {
		binary.LittleEndian.PutUint32(b[8:], 1)
	}
	binary.LittleEndian.PutUint64(b[12:], m.epoch)
	binary.LittleEndian.PutUint64(b[20:], uint64(m.step))
	binary.LittleEndian.PutUint64(b[28:], uint64(n))
	params := make([]float32, n)
	if err := m.model.Params(params); err != nil {
		return nil, err
	}
	b = appendFloats(b, params)
	if m.cfg.Swarm.Mode == "diloco" {
		return appendFloats(b, m.momentum), nil
	}
	st, err := m.opt.State()
	if err != nil {
		return nil, err
	}
	b = appendFloats(appendFloats(b, st.ExpAvg), st.ExpAvgSq)
	return binary.LittleEndian.AppendUint64(b, uint64(st.Step)), nil
}

func appendFloats(b []byte, xs []float32) []byte {
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func readFloats(b []byte, n int64) ([]float32, []byte, error) {
	xs := make([]float32, n)
	for i := range xs {
		xs[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if xs[i]-xs[i] != 0 {
			return nil, nil, fmt.Errorf("value %d is %v", i, xs[i])
		}
	}
	return xs, b[4*n:], nil
}

// loadState checks blob against this miner's model and mode and, only if
// all of it is good, makes it the miner's state.
func (m *Miner) loadState(blob []byte) error {
	n := m.model.NumParams()
	mode := m.cfg.Swarm.Mode
	if int64(len(blob)) != stateSize(mode, n) || string(blob[:4]) != stateMagic {
		return fmt.Errorf("state: %d bytes, want a %s state of %d for %d parameters", len(blob), mode, stateSize(mode, n), n)
	}
	wantMode := uint32(0)
	if mode != "diloco" {
		wantMode = 1
	}
	if v := binary.LittleEndian.Uint32(blob[4:]); v != stateVersion {
		return fmt.Errorf("state: version %d, want %d", v, stateVersion)
	}
	if got := binary.LittleEndian.Uint32(blob[8:]); got != wantMode || binary.LittleEndian.Uint64(blob[28:]) != uint64(n) {
		return errors.New("state: another mode or model size")
	}
	epoch, step := binary.LittleEndian.Uint64(blob[12:]), binary.LittleEndian.Uint64(blob[20:])
	if step > math.MaxInt32 {
		return fmt.Errorf("state: step %d", step)
	}
	params, rest, err := readFloats(blob[stateHead:], n)
	if err != nil {
		return fmt.Errorf("state parameters: %w", err)
	}
	var extra1, extra2 []float32
	if extra1, rest, err = readFloats(rest, n); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if mode != "diloco" {
		if extra2, rest, err = readFloats(rest, n); err != nil {
			return fmt.Errorf("state: %w", err)
		}
		st := torch.AdamWState{ExpAvg: extra1, ExpAvgSq: extra2, Step: int64(binary.LittleEndian.Uint64(rest))}
		if err := m.opt.SetState(st); err != nil {
			return err
		}
	}
	if err := m.model.SetParams(params); err != nil {
		return err
	}
	if mode == "diloco" {
		m.momentum = extra1
	}
	m.epoch, m.step = epoch, int(step)
	return nil
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
	if err := m.loadState(blob); err != nil {
		return false, fmt.Errorf("checkpoint %s: %w", m.checkpointPath(), err)
	}
	return true, nil
}
