package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dtrain-dev/dtrain/torch"
)

// A run's checkpoints live in OUT/checkpoints/step_NNNNNNNN, each a complete
// HF checkpoint directory plus optimizer and trainer state. A checkpoint is
// written into a temporary directory that is renamed into place only when
// every file in it is on disk, and OUT/checkpoints/latest names the newest
// one, replaced atomically after the rename. A process killed at any moment
// therefore leaves the previous checkpoint whole and named by latest.
const (
	checkpointsDir = "checkpoints"
	latestFile     = "latest"
	stepPrefix     = "step_"
	tmpPrefix      = ".tmp-"
	// ConfigCopy is the training configuration saved in each checkpoint.
	ConfigCopy = "train.toml"
)

// ErrNoCheckpoint is returned when a run directory has no checkpoint.
var ErrNoCheckpoint = errors.New("no checkpoint")

// CheckpointDir is where step's checkpoint of the run in out lives.
func CheckpointDir(out string, step int) string {
	return filepath.Join(out, checkpointsDir, fmt.Sprintf("%s%08d", stepPrefix, step))
}

// writeCheckpoint writes a checkpoint directory atomically: fill writes the
// files into a fresh temporary directory, which then replaces final.
func writeCheckpoint(final string, fill func(dir string) error) error {
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, tmpPrefix+filepath.Base(final)+"-")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	// MkdirTemp makes it 0700; a checkpoint is as readable as its files
	// (0644), so that a container's root writes what the host user reads.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := fill(tmp); err != nil {
		return fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if err := torch.SyncDir(tmp); err != nil {
		return fmt.Errorf("checkpoint %s: %w", final, err)
	}
	// A directory cannot be renamed over a non-empty one: move an existing
	// checkpoint of the same step aside first (a resumed run re-saving it).
	if _, err := os.Stat(final); err == nil {
		old := filepath.Join(parent, tmpPrefix+"old-"+filepath.Base(final))
		os.RemoveAll(old)
		if err := os.Rename(final, old); err != nil {
			return fmt.Errorf("checkpoint %s: %w", final, err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if err := torch.SyncDir(parent); err != nil {
		return fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if err := torch.WriteFileAtomic(filepath.Join(parent, latestFile), []byte(filepath.Base(final)+"\n")); err != nil {
		return fmt.Errorf("checkpoint %s: %w", final, err)
	}
	return nil
}

// stepDirs lists the complete checkpoints of a run, newest first.
func stepDirs(out string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(out, checkpointsDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	type cand struct {
		step int
		dir  string
	}
	var cs []cand
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), stepPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		if step, err := strconv.Atoi(n); err == nil {
			cs = append(cs, cand{step, filepath.Join(out, checkpointsDir, e.Name())})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int { return b.step - a.step })
	dirs := make([]string, len(cs))
	for i, c := range cs {
		dirs[i] = c.dir
	}
	return dirs, nil
}

// Checkpoints lists a run's checkpoint directories to try, best first: the
// one latest names, then the others newest first. It wraps ErrNoCheckpoint
// when there are none.
func Checkpoints(out string) ([]string, error) {
	dirs, err := stepDirs(out)
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(out, checkpointsDir, latestFile)); err == nil {
		latest := filepath.Join(out, checkpointsDir, strings.TrimSpace(string(b)))
		if i := slices.Index(dirs, latest); i > 0 {
			dirs = append([]string{latest}, slices.Delete(dirs, i, i+1)...)
		}
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%s: %w", filepath.Join(out, checkpointsDir), ErrNoCheckpoint)
	}
	return dirs, nil
}

// SaveModelCheckpoint writes m as an HF checkpoint (config.json,
// model.safetensors, and extra's files) of step in out's checkpoints, the
// way the trainer writes its own (atomically, then latest names it), and
// keeps the newest keep. A miner keeps its latest model this way, so that
// generate and eval read a miner's out_dir as they read a trainer's.
func SaveModelCheckpoint(out string, step int, m *torch.Model, extra map[string][]byte, keep int) (string, error) {
	dir := CheckpointDir(out, step)
	err := writeCheckpoint(dir, func(tmp string) error {
		if err := torch.SaveModel(tmp, m); err != nil {
			return err
		}
		for name, b := range extra {
			if err := torch.WriteFileAtomic(filepath.Join(tmp, name), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return dir, prune(out, keep)
}

// ResolveCheckpoint turns what a user names into a model directory: a
// checkpoint directory itself, a run's out_dir or its checkpoints
// directory (the latest checkpoint), or the latest file that names it.
func ResolveCheckpoint(path string) (string, error) {
	if _, err := os.Stat(filepath.Join(path, torch.ConfigFile)); err == nil {
		return path, nil
	}
	switch st, err := os.Stat(path); {
	case err != nil:
		return "", fmt.Errorf("checkpoint: %w", err)
	case !st.IsDir():
		// checkpoints/latest: a text file naming the newest checkpoint
		// beside it.
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("checkpoint: %w", err)
		}
		name := strings.TrimSpace(string(b))
		dir := filepath.Join(filepath.Dir(path), name)
		if name == "" || strings.ContainsAny(name, "/\\") || len(b) > 256 {
			return "", fmt.Errorf("%s is neither a checkpoint directory nor a latest file naming one", path)
		}
		if _, err := os.Stat(filepath.Join(dir, torch.ConfigFile)); err != nil {
			return "", fmt.Errorf("%s names %s, which is no checkpoint: %w", path, dir, err)
		}
		return dir, nil
	case filepath.Base(filepath.Clean(path)) == checkpointsDir:
		path = filepath.Dir(filepath.Clean(path))
	}
	dirs, err := Checkpoints(path)
	if err != nil {
		return "", fmt.Errorf("%s is neither a checkpoint (no %s) nor a run directory: %w", path, torch.ConfigFile, err)
	}
	return dirs[0], nil
}

// prune deletes all but the newest keep checkpoints, never the one latest
// names, and leftovers of writes that a killed process left behind.
func prune(out string, keep int) error {
	dir := filepath.Join(out, checkpointsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("prune checkpoints: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	dirs, err := Checkpoints(out)
	if err != nil {
		return err
	}
	for _, d := range dirs[min(keep, len(dirs)):] {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("prune checkpoints: %w", err)
		}
	}
	return nil
}
