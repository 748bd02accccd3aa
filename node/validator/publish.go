package validator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/epoch"
	"github.com/dtrain-dev/dtrain/node/hub"
	"github.com/dtrain-dev/dtrain/node/state"
	"github.com/dtrain-dev/dtrain/node/train"
	"github.com/dtrain-dev/dtrain/torch"
)

// StateFile is the state blob's name in a published checkpoint, the one
// miners load from the Hub (node/miner).
const StateFile = "miner_state.bin"

// Checkpoint is what PublishCheckpoint uploads.
type Checkpoint struct {
	Repo  string
	State state.Snapshot // a diloco state: the swarm's at the start of State.Epoch
	Hash  [32]byte       // its hash, as the swarm agreed on it
	Model torch.Config
	Card  hub.Card // Repo, Run, Epoch, Tag, the model's shape and the held-out loss are filled in here
	// Val is the run's held-out data: the card gives the state's loss on
	// ValWindows of its windows, micro at a time; nil: none.
	Val        *data.Dataset
	ValWindows int64
	Micro      int
}

// PublishCheckpoint writes the state as an HF checkpoint (config.json,
// model.safetensors), the state blob and a model card, uploads them as
// one commit to the repo's main branch and tags it <run>.<epoch>. A blob
// that does not hash to the agreed state is not published.
func PublishCheckpoint(ctx context.Context, c *hub.Client, run string, cp Checkpoint) (string, error) {
	blob, err := cp.State.Marshal()
	if err != nil {
		return "", err
	}
	if got := state.Hash(blob); got != cp.Hash {
		return "", fmt.Errorf("the state of epoch %d re-encodes to %x, not the swarm's %x", cp.State.Epoch, got[:8], cp.Hash[:8])
	}
	dir, err := os.MkdirTemp("", "dtrain-publish-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	m, err := torch.NewModel(cp.Model, torch.CPU, 0)
	if err != nil {
		return "", err
	}
	card := cp.Card
	card.ValLoss = math.NaN()
	err = m.SetParams(cp.State.Params)
	if err == nil {
		err = torch.SaveModel(dir, m)
	}
	if err == nil && cp.Val != nil {
		card.ValLoss, card.ValTokens, err = train.HeldOutLoss(m, cp.Val, cp.ValWindows, max(1, cp.Micro))
	}
	m.Close()
	if err != nil {
		return "", err
	}
	card.Repo, card.Run, card.Epoch, card.Tag = cp.Repo, run, cp.State.Epoch, hub.EpochTag(run, cp.State.Epoch)
	card.Params = int64(len(cp.State.Params))
	card.NLayer, card.NHead, card.NEmbd, card.NPositions, card.VocabSize = cp.Model.NLayer, cp.Model.NHead, cp.Model.NEmbd,
		cp.Model.NPositions, cp.Model.VocabSize
	if err := os.WriteFile(filepath.Join(dir, StateFile), blob, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), hub.ModelCard(card), 0o644); err != nil {
		return "", err
	}
	if err := c.CreateRepo(ctx, cp.Repo, false); err != nil {
		return "", err
	}
	sha, err := c.Upload(ctx, cp.Repo, "main", dir, fmt.Sprintf("dtrain run %s, epoch %d (validator)", run, cp.State.Epoch))
	if err != nil {
		return "", err
	}
	if err := c.Tag(ctx, cp.Repo, sha, card.Tag, ""); err != nil && !errors.Is(err, hub.ErrTagExists) {
		return "", err
	}
	return sha, nil
}

// hubClient returns the Hub client of hub.repo, nil when the validator
// publishes nothing.
func (v *Validator) hubClient() (*hub.Client, error) {
	h := v.cfg.Hub
	if h.Repo == "" || h.UploadEvery == 0 {
		return nil, nil
	}
	opts, warning := hub.ConfigEndpoint(h.Endpoint)
	if warning != "" {
		v.log.Warn().Str("endpoint", h.Endpoint).Msg(warning)
	}
	return hub.New(opts...)
}

// maybePublish publishes a state of the swarm every hub.upload_every
// epochs: the newest state the holder has loaded that starts a multiple
// of upload_every, after the last one published. The upload (and the
// model card's held-out evaluation) runs in the background, one at a
// time. It runs on the driver's loop, at every heartbeat: the holder
// keeps two epochs' states, so a validator slower than its audits still
// sees each one.
func (d *driver) maybePublish() {
	v := d.v
	every := uint64(v.cfg.Hub.UploadEvery)
	if v.hub == nil || v.holder == nil || every == 0 || d.publishing {
		return
	}
	e, snap, hash, found := v.holder.Newest(func(s uint64) bool {
		return s > 0 && s%every == 0 && (d.published == nil || s > *d.published)
	})
	if !found {
		return
	}
	cp := Checkpoint{Repo: v.cfg.Hub.Repo, State: snap, Hash: hash, Model: v.modelConfig(),
		Card: hub.Card{License: v.cfg.Hub.License, TokensSeen: d.tokensSeen()}, Val: v.opts.Val}
	if r := v.opts.Run; r != nil {
		cp.ValWindows, cp.Micro = int64(max(1, r.Loop.EvalTokens/r.Data.SeqLen)), r.Loop.MicroBatch
		cp.Card.Data = r.Data.Train
		if cp.Card.Data == "" {
			cp.Card.Data = "dtrain's built-in corpus (the Go standard library's sources)"
		}
	}
	d.publishing = true
	d.goWork(func(ctx context.Context) func() []epoch.Action {
		t0 := time.Now()
		sha, err := PublishCheckpoint(ctx, v.hub, v.cfg.RunID, cp)
		return func() []epoch.Action {
			d.publishing = false
			if err != nil {
				v.log.Warn().Err(err).Uint64("epoch", e).Msg("publish to the hub")
				return nil
			}
			d.published = &e
			tag := hub.EpochTag(v.cfg.RunID, e)
			v.log.Info().Uint64("epoch", e).Str("repo", cp.Repo).Str("tag", tag).Str("commit", sha).
				Dur("took_ms", time.Since(t0)).Msg("published to the hub")
			v.event(PublishEvent{Epoch: e, Repo: cp.Repo, Tag: tag, Commit: sha})
			return nil
		}
	})
}

// modelConfig is the run's model.
func (v *Validator) modelConfig() torch.Config {
	md := v.cfg.Model
	return torch.NewConfig(md.NLayer, md.NHead, md.NEmbd, md.NPositions, md.VocabSize)
}

// tokensSeen is what the miners reported training on through the closed
// epochs, in tokens (samples when the sequence length is unknown).
func (d *driver) tokensSeen() int64 {
	if r := d.v.opts.Run; r != nil {
		return d.samplesTotal * int64(r.Data.SeqLen)
	}
	return 0
}

// PublishEvent is a checkpoint the validator published.
type PublishEvent struct {
	Epoch             uint64
	Repo, Tag, Commit string
}

func (PublishEvent) Kind() string { return "publish" }

func (e PublishEvent) Fields() map[string]any {
	return map[string]any{"epoch": e.Epoch, "repo": e.Repo, "tag": e.Tag, "commit": e.Commit}
}
