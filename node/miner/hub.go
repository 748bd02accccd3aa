package miner

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dtrain-dev/dtrain/node/hub"
	"github.com/dtrain-dev/dtrain/node/state"
	"github.com/dtrain-dev/dtrain/torch"
)

// stateFile is the name of the state blob in a published checkpoint, next
// to the HF model files (config.json, model.safetensors).
const stateFile = "miner_state.bin"

// hubClient returns the Hub client of hub.repo, nil when none is set.
func (m *Miner) hubClient() (*hub.Client, error) {
	h := m.cfg.Hub
	if h.Repo == "" {
		return nil, nil
	}
	// The miner downloads only state blobs: parameters and at most two
	// optimizer moments in float32, and a header. Four times the
	// parameters' bytes and 64 MiB bound that with room to spare.
	opts, warning := hub.ConfigEndpoint(h.Endpoint)
	if warning != "" {
		m.log.Warn().Str("endpoint", h.Endpoint).Msg(warning)
	}
	return hub.New(append(opts, hub.WithMaxFileSize(16*m.model.NumParams()+64<<20))...)
}

// loadFromHub loads the run's newest published state when it is ahead of
// this miner's: the fallback when no peer serves the swarm's state (a
// miner restarting a run alone, or the first miner after the swarm
// stopped). It reports whether it loaded one.
func (m *Miner) loadFromHub(ctx context.Context) (bool, error) {
	if m.hub == nil {
		return false, nil
	}
	start := time.Now()
	tag, epoch, err := m.hub.LatestEpochTag(ctx, m.cfg.Hub.Repo, m.cfg.RunID)
	if errors.Is(err, hub.ErrNotFound) {
		return false, nil // nothing published yet
	}
	if err != nil {
		return false, fmt.Errorf("hub %s: %w", m.cfg.Hub.Repo, err)
	}
	if epoch <= m.epoch {
		return false, nil
	}
	dir, err := m.hub.Download(ctx, m.cfg.Hub.Repo, tag, []string{stateFile})
	if err != nil {
		return false, fmt.Errorf("hub %s at %s: %w", m.cfg.Hub.Repo, tag, err)
	}
	blob, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return false, err
	}
	from := m.epoch
	if _, err := m.loadState(blob); err != nil {
		return false, fmt.Errorf("hub %s at %s: %w", m.cfg.Hub.Repo, tag, err)
	}
	m.hubHas = &epoch // already published: no need to upload it again
	took := time.Since(start)
	m.log.Info().Uint64("epoch", m.epoch).Uint64("from_epoch", from).Str("repo", m.cfg.Hub.Repo).Str("tag", tag).
		Int("bytes", len(blob)).Dur("took_ms", took).Msg("state loaded from the hub")
	m.event(LoadEvent{Epoch: m.epoch, FromEpoch: from, Source: "hub", Bytes: int64(len(blob)), Took: took,
		BytesPerSec: float64(len(blob)) / max(took.Seconds(), 1e-9), ParamHash: shortHash(state.Hash(blob))})
	return true, nil
}

// maybePublish uploads the epoch's model and state as one commit tagged
// <run>.<epoch>, every hub.upload_every epochs, from the miner that ranks
// first among itself and the others at the epoch (uploaderRank), so the
// swarm makes one commit.
// The model is written here; the upload runs in the background, one at a
// time (an epoch whose turn comes while one is running is skipped).
func (m *Miner) maybePublish(ctx context.Context, blob []byte, others []string) {
	every := uint64(m.cfg.Hub.UploadEvery)
	if m.hub == nil || every == 0 || m.epoch == 0 || m.epoch%every != 0 || (m.hubHas != nil && *m.hubHas == m.epoch) {
		return
	}
	mine := uploaderRank(m.cfg.RunID, m.epoch, m.self)
	for _, o := range others {
		if uploaderRank(m.cfg.RunID, m.epoch, o) < mine {
			return
		}
	}
	select {
	case m.publishing <- struct{}{}:
	default:
		m.log.Warn().Uint64("epoch", m.epoch).Msg("previous hub upload still running; skipping this one")
		return
	}
	dir, err := os.MkdirTemp("", "dtrain-publish-")
	if err == nil {
		err = torch.SaveModel(dir, m.model)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, stateFile), blob, 0o644)
	}
	if err != nil {
		<-m.publishing
		os.RemoveAll(dir)
		m.log.Warn().Err(err).Msg("write checkpoint for the hub")
		m.event(ErrorEvent{Epoch: m.epoch, Op: "hub publish", Err: err.Error()})
		return
	}
	epoch := m.epoch
	m.uploads.Add(1)
	go func() {
		defer m.uploads.Done()
		defer func() { <-m.publishing }()
		defer os.RemoveAll(dir)
		if err := m.publish(ctx, dir, epoch); err != nil {
			m.log.Warn().Err(err).Uint64("epoch", epoch).Msg("publish to the hub")
			m.event(ErrorEvent{Epoch: epoch, Op: "hub publish", Err: err.Error()})
		}
	}()
}

// uploaderRank orders the miners at an epoch for its Hub upload: by
// SHA-256 of (run, epoch, peer id), lowest first. A new draw every epoch:
// with the lowest peer id ranking first, one ground id that never uploads
// (ids cost nothing) would have silenced the run's uploads for good.
func uploaderRank(run string, epoch uint64, peer string) string {
	h := sha256.New()
	fmt.Fprintf(h, "dtrain/uploader/v1\x00%d:%s\x00%d\x00%s", len(run), run, epoch, peer)
	return string(h.Sum(nil))
}

func (m *Miner) publish(ctx context.Context, dir string, epoch uint64) error {
	start := time.Now()
	repo, tag := m.cfg.Hub.Repo, hub.EpochTag(m.cfg.RunID, epoch)
	if err := m.hub.CreateRepo(ctx, repo, false); err != nil {
		return err
	}
	sha, err := m.hub.Upload(ctx, repo, "main", dir, fmt.Sprintf("dtrain run %s, epoch %d", m.cfg.RunID, epoch))
	if err != nil {
		return err
	}
	if err := m.hub.Tag(ctx, repo, sha, tag, ""); err != nil && !errors.Is(err, hub.ErrTagExists) {
		return err
	}
	m.log.Info().Str("repo", repo).Str("tag", tag).Str("commit", sha).Dur("took_ms", time.Since(start)).Msg("published to the hub")
	return nil
}
