package main

import (
	"context"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/rs/zerolog/log"

	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/wandb"
)

// openWandb starts a role's W&B run when $WANDB_API_KEY is set (nil
// otherwise, or when it cannot start: training never waits on W&B). One
// W&B run per dtrain run, role and peer, named after them, so a restart
// resumes it.
func openWandb(w config.Wandb, run, role, peer string, cfg map[string]any) *wandb.Run {
	key := os.Getenv("WANDB_API_KEY")
	if key == "" {
		return nil
	}
	base, trusted := w.BaseURL, false
	if env := os.Getenv("WANDB_BASE_URL"); env != "" {
		trusted = base == "" || strings.TrimRight(base, "/") == strings.TrimRight(env, "/")
		base = env
	}
	r, err := wandb.Start(wandb.Config{BaseURL: base, BaseURLTrusted: trusted, APIKey: key, Entity: w.Entity, Project: w.Project,
		Name: wandbName(run, role, peer), Group: run, JobType: role, Config: cfg, Log: log.Logger})
	if err != nil {
		log.Warn().Err(err).Msg("not logging to W&B")
		return nil
	}
	return r
}

// closeWandb posts what is queued and marks the run finished, waiting
// 10 s at most.
func closeWandb(r *wandb.Run) {
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		log.Warn().Err(err).Int64("dropped", r.Dropped()).Msg("W&B run not closed cleanly")
	}
}

// wandbName is a W&B run name for a role's peer in a run ("" for a
// trainer): letters, digits, '-', '_' and '.' only.
func wandbName(run, role, peer string) string {
	name := run + "-" + role
	if peer != "" {
		name += "-" + peer[max(0, len(peer)-8):]
	}
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return r
		}
		return '_'
	}, name)
}
