package train

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/torch"
)

// Options is what Run needs. Train and Val are opened by the caller with
// Config.Data.SeqLen; Val may be nil (no evaluation).
type Options struct {
	Config   config.Train
	Resume   bool // continue from out_dir's latest checkpoint if there is one
	Train    *data.Dataset
	Val      *data.Dataset
	Log      zerolog.Logger
	Observer Observer // nil: NopObserver
}

// trainer holds one run's live objects.
type trainer struct {
	opts  Options
	cfg   config.Train
	log   zerolog.Logger
	obs   Observer
	model *torch.Model
	opt   *torch.AdamW
	order data.Order
	state State
	sched Schedule
	accum int
	// lastEval is the step of the latest evaluation in this process, -1 before it.
	lastEval int
	cfgTOML  []byte
}

func (t *trainer) close() {
	if t.opt != nil {
		t.opt.Close()
	}
	if t.model != nil {
		t.model.Close()
	}
}

// lockRun takes an exclusive lock on out_dir, so two trainers never write
// one run's checkpoints. The lock ends with the process.
func lockRun(out string) (*os.File, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("out_dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(out, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("out_dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("out_dir %s is in use by another dtrain process (%w)", out, err)
	}
	return f, nil
}

// setup builds the model and optimizer, fresh or from the latest
// checkpoint.
func setup(o Options) (*trainer, error) {
	cfg := o.Config
	if o.Train == nil {
		return nil, errors.New("train: no training data")
	}
	if o.Train.SeqLen() != cfg.Data.SeqLen || (o.Val != nil && o.Val.SeqLen() != cfg.Data.SeqLen) {
		return nil, fmt.Errorf("train: datasets cut into windows of %d, config data.seq_len is %d", o.Train.SeqLen(), cfg.Data.SeqLen)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		return nil, fmt.Errorf("train: encode config: %w", err)
	}
	t := &trainer{opts: o, cfg: cfg, log: o.Log, obs: o.Observer, cfgTOML: buf.Bytes(), accum: max(1, cfg.AccumSteps()), lastEval: -1}
	if t.obs == nil {
		t.obs = NopObserver{}
	}
	t.sched = Schedule{LR: cfg.Optim.LR, MinLR: cfg.Optim.MinLR, Warmup: cfg.Optim.WarmupSteps, Total: cfg.Loop.MaxSteps}
	dev, err := torch.ParseDevice(cfg.Device)
	if err != nil {
		return nil, err
	}
	resumed, err := t.resume(dev)
	if err != nil {
		return nil, err
	}
	if !resumed {
		if err := t.fresh(dev); err != nil {
			t.close()
			return nil, err
		}
	}
	if err := t.checkModel(); err != nil {
		t.close()
		return nil, err
	}
	if t.order, err = data.NewOrder(cfg.RunID, cfg.Seed, o.Train.Len()); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// resume loads the newest loadable checkpoint when asked to, and refuses to
// start over a run that has checkpoints when not.
func (t *trainer) resume(dev torch.Device) (bool, error) {
	dirs, err := Checkpoints(t.cfg.OutDir)
	if errors.Is(err, ErrNoCheckpoint) {
		if t.opts.Resume {
			t.log.Warn().Str("out_dir", t.cfg.OutDir).Msg("nothing to resume: starting a new run")
		}
		return false, nil
	} else if err != nil {
		return false, err
	}
	if !t.opts.Resume {
		return false, fmt.Errorf("train: %s already holds checkpoints (newest %s): pass --resume to continue that run, or choose another out_dir", t.cfg.OutDir, filepath.Base(dirs[0]))
	}
	for _, dir := range dirs {
		if err := t.load(dir, dev); err != nil {
			t.log.Warn().Err(err).Str("checkpoint", dir).Msg("checkpoint unusable, trying an older one")
			t.close()
			t.model, t.opt = nil, nil
			continue
		}
		return true, nil
	}
	return false, fmt.Errorf("train: none of the %d checkpoints in %s loads", len(dirs), t.cfg.OutDir)
}

func (t *trainer) load(dir string, dev torch.Device) error {
	var st State
	if err := torch.LoadTrainerState(dir, &st); err != nil {
		return err
	}
	if st.Version != stateVersion {
		return fmt.Errorf("%s: trainer state version %d, want %d", dir, st.Version, stateVersion)
	}
	if st.RunID != t.cfg.RunID || st.Seed != t.cfg.Seed {
		return fmt.Errorf("%s belongs to run %q seed %d, the config says run %q seed %d", dir, st.RunID, st.Seed, t.cfg.RunID, t.cfg.Seed)
	}
	if st.TrainWindows != t.opts.Train.Len() || st.SeqLen != t.cfg.Data.SeqLen {
		return fmt.Errorf("%s was trained on %d windows of %d tokens, the data now has %d of %d: resuming would not continue the same data order",
			dir, st.TrainWindows, st.SeqLen, t.opts.Train.Len(), t.cfg.Data.SeqLen)
	}
	m, err := torch.LoadModel(dir, dev)
	if err != nil {
		return err
	}
	t.model = m
	if err := SetPrecision(m, t.cfg); err != nil {
		return err
	}
	if t.opt, err = torch.NewAdamW(m, t.adamw()); err != nil {
		return err
	}
	if err := torch.LoadOptimizer(filepath.Join(dir, torch.OptimizerFile), t.opt); err != nil {
		return err
	}
	if old, err := os.ReadFile(filepath.Join(dir, ConfigCopy)); err == nil && !bytes.Equal(old, t.cfgTOML) {
		t.warnConfigChanges(dir, old)
	}
	t.state = st
	t.log.Info().Str("checkpoint", dir).Int("step", st.Step).Int64("tokens", st.Tokens).Msg("resumed")
	return nil
}

// warnConfigChanges logs each key whose value differs between the
// checkpoint's copy of the config (old) and the running one, so that an
// operator sees what a resume changes; a copy it cannot read gets one
// warning without keys.
func (t *trainer) warnConfigChanges(dir string, old []byte) {
	const msg = "the configuration differs from the one this checkpoint was trained with: the run will not follow the uninterrupted trajectory"
	changes, err := config.DiffTrainTOML(old, t.cfgTOML)
	if err != nil {
		t.log.Warn().Err(err).Str("checkpoint", dir).Msg(msg)
		return
	}
	for _, c := range changes {
		t.log.Warn().Str("checkpoint", dir).Str("key", c.Key).Str("was", c.Old).Str("now", c.New).Msg(msg)
	}
}

func (t *trainer) adamw() torch.AdamWConfig { return AdamWConfig(t.cfg.Optim) }

// AdamWConfig is the optimizer the optim table describes.
func AdamWConfig(o config.Optim) torch.AdamWConfig {
	return torch.AdamWConfig{Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: o.WeightDecay}
}

// NewModel builds the model cfg describes: model.init's checkpoint, or a
// fresh one of the configured sizes seeded by cfg.Seed.
func NewModel(cfg config.Train, dev torch.Device) (*torch.Model, error) {
	var m *torch.Model
	var err error
	if mc := cfg.Model; mc.Init != "" {
		m, err = torch.LoadModel(mc.Init, dev)
	} else {
		c := torch.NewConfig(mc.NLayer, mc.NHead, mc.NEmbd, mc.NPositions, mc.VocabSize)
		c.EmbdPdrop, c.AttnPdrop, c.ResidPdrop = mc.Dropout, mc.Dropout, mc.Dropout
		m, err = torch.NewModel(c, dev, cfg.Seed)
	}
	if err != nil {
		return nil, err
	}
	if err := SetPrecision(m, cfg); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// SetPrecision applies cfg's precision to m (auto: see torch.ParsePrecision).
func SetPrecision(m *torch.Model, cfg config.Train) error {
	p, err := torch.ParsePrecision(cfg.Precision, m.Device())
	if err != nil {
		return err
	}
	return m.SetPrecision(p)
}

// fresh builds a new model (from model.init or from scratch) and optimizer.
func (t *trainer) fresh(dev torch.Device) error {
	var err error
	if t.model, err = NewModel(t.cfg, dev); err != nil {
		return err
	}
	if t.opt, err = torch.NewAdamW(t.model, t.adamw()); err != nil {
		return err
	}
	t.state = State{Version: stateVersion, RunID: t.cfg.RunID, Seed: t.cfg.Seed, TrainWindows: t.opts.Train.Len(), SeqLen: t.cfg.Data.SeqLen}
	t.log.Info().Int64("params", t.model.NumParams()).Str("device", dev.String()).Str("precision", string(t.model.Precision())).Msg("new model")
	return nil
}

// checkModel rejects a model the data cannot train.
func (t *trainer) checkModel() error { return CheckModel(t.model, t.cfg.Data.SeqLen) }

// CheckModel rejects a model that windows of seqLen GPT-2 tokens cannot train.
func CheckModel(m *torch.Model, seqLen int) error {
	mc := m.Config()
	if seqLen > mc.NPositions {
		return fmt.Errorf("train: data.seq_len %d exceeds the model's n_positions %d", seqLen, mc.NPositions)
	}
	if mc.VocabSize < data.VocabSize {
		return fmt.Errorf("train: the model's vocab_size %d is smaller than GPT-2's tokenizer (%d tokens)", mc.VocabSize, data.VocabSize)
	}
	return nil
}

// save writes a checkpoint of the current step and prunes old ones.
func (t *trainer) save() error {
	start := time.Now()
	dir := CheckpointDir(t.cfg.OutDir, t.state.Step)
	t.state.Saved = time.Now().UTC().Format(time.RFC3339)
	err := writeCheckpoint(dir, func(tmp string) error {
		if err := torch.SaveModel(tmp, t.model); err != nil {
			return err
		}
		if err := torch.SaveOptimizer(filepath.Join(tmp, torch.OptimizerFile), t.opt); err != nil {
			return err
		}
		if err := torch.WriteFileAtomic(filepath.Join(tmp, ConfigCopy), t.cfgTOML); err != nil {
			return err
		}
		return torch.SaveTrainerState(tmp, t.state)
	})
	if err != nil {
		return err
	}
	if err := prune(t.cfg.OutDir, t.cfg.Loop.KeepCheckpoints); err != nil {
		t.log.Warn().Err(err).Msg("pruning old checkpoints")
	}
	took := time.Since(start)
	t.log.Info().Str("dir", dir).Int("step", t.state.Step).Dur("took_ms", took).Msg("checkpoint written")
	t.obs.Checkpoint(CheckpointEvent{Step: t.state.Step, Dir: dir, Took: took})
	return nil
}
