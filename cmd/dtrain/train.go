package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/rs/zerolog/log"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/train"
	"github.com/dtrain-dev/dtrain/torch"
)

func trainCommand() *cli.Command {
	return &cli.Command{
		Name:  "train",
		Usage: "train a GPT-2 on one machine (text, JSONL, parquet or llm.c shards; the built-in corpus by default)",
		Description: "Without --config, trains the default configuration (`dtrain config init --role train` prints it)\n" +
			"on the built-in corpus. Ctrl-C stops after the current step and writes a checkpoint;\n" +
			"--resume continues from out_dir's latest checkpoint exactly where it stopped.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "TOML configuration file"},
			setFlag(),
			&cli.BoolFlag{Name: "resume", Usage: "continue from out_dir's latest checkpoint (start fresh if there is none)"},
			&cli.StringFlag{Name: "out-dir", Usage: "override out_dir"},
			&cli.Float64Flag{Name: "max-minutes", Usage: "override train.max_minutes"},
			&cli.StringFlag{Name: "metrics-addr", Aliases: []string{"http"}, Usage: "serve Prometheus metrics on /metrics and the run's dashboard on / here (overrides metrics.addr), e.g. 127.0.0.1:9100"},
		}, deviceFlags()...),
		Action: runTrain,
	}
}

// deviceFlags are the device flags of every command that trains; they
// override the config's device and precision. The GPU image sets
// DTRAIN_DEVICE=cuda, which is the device key's variable (config.EnvName):
// it reaches the config with the other DTRAIN_ variables, below --set and
// these flags, so the flags read no variable themselves. New flags each
// time: a cli flag keeps the value it was set to, and commands run more
// than once in one process (tests).
func deviceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "device", Usage: "override device: cpu, cuda or cuda:N (over $DTRAIN_DEVICE)"},
		&cli.StringFlag{Name: "precision", Usage: "override precision: auto, fp32 or bf16 (over $DTRAIN_PRECISION)"},
	}
}

func applyDeviceFlags(c *cli.Context, cfg *config.Train) {
	if c.IsSet("device") {
		cfg.Device = c.String("device")
	}
	if c.IsSet("precision") {
		cfg.Precision = c.String("precision")
	}
}

// trainConfig loads --config (or the defaults) and applies the overrides:
// the DTRAIN_ variables, then --set, then the dedicated flags.
func trainConfig(c *cli.Context) (config.Train, error) {
	cfg := config.DefaultTrain()
	if p := c.String("config"); p != "" {
		var err error
		if cfg, err = config.LoadTrain(p); err != nil {
			return cfg, err
		}
	}
	if err := applyOverrides(c, &cfg); err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	if c.IsSet("out-dir") {
		cfg.OutDir = c.String("out-dir")
	}
	if c.IsSet("max-minutes") {
		cfg.Loop.MaxMinutes = c.Float64("max-minutes")
	}
	if c.IsSet("metrics-addr") {
		cfg.Metrics.Addr = c.String("metrics-addr")
	}
	applyDeviceFlags(c, &cfg)
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

func runTrain(c *cli.Context) error {
	cfg, err := trainConfig(c)
	if err != nil {
		return err
	}
	if cfg.Threads > 0 && !c.IsSet("threads") {
		if err := torch.SetThreads(cfg.Threads); err != nil {
			return err
		}
	}
	// The first Ctrl-C (or SIGTERM) stops after the current step with a
	// checkpoint; a second one kills the process the default way.
	ctx, stop := gracefulContext(c.Context)
	defer stop()
	trainDS, valDS, err := openTrainData(ctx, cfg)
	if err != nil {
		return err
	}
	defer trainDS.Close()
	if valDS != nil {
		defer valDS.Close()
	}
	obs, err := newTrainObserver(ctx, cfg, trainDS)
	if err != nil {
		return err
	}
	defer obs.close()
	st, err := train.Run(ctx, train.Options{
		Config: cfg, Resume: c.Bool("resume"), Train: trainDS, Val: valDS,
		Log: log.Logger, Observer: obs,
	})
	obs.finish()
	if err != nil {
		return err
	}
	ev := log.Info().Int("step", st.Step).Int64("tokens", st.Tokens).Float64("val_loss", st.ValLoss).
		Str("checkpoint", train.CheckpointDir(cfg.OutDir, st.Step))
	if st.Step < cfg.Loop.MaxSteps {
		ev.Msg("stopped; continue with --resume")
	} else {
		ev.Msg("training done")
	}
	return nil
}

// openTrainData tokenizes text inputs into cached shards (once) and opens
// the training and held-out windows.
func openTrainData(ctx context.Context, cfg config.Train) (tr, val *data.Dataset, err error) {
	in := cfg.Data.Train
	if in == "" {
		in = data.BuiltinCorpus
		if info, err := data.BuiltinCorpusInfo(); err == nil {
			log.Info().Str("root", info.Root).Str("go", info.GoVersion).Int("files", info.Files).Int64("bytes", info.Bytes).
				Msg("training on the built-in corpus: the Go standard library sources")
		}
	}
	cache := cfg.Data.CacheDir
	opts := data.PrepareOptions{ValFraction: cfg.Data.ValFraction, Warn: warnData}
	if cfg.Data.Val != "" {
		opts.ValFraction = -1 // held-out data comes from data.val
	}
	dir, err := data.EnsurePrepared(ctx, in, cache, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("training data: %w", err)
	}
	if tr, err = data.OpenDataset(dir, "train", cfg.Data.SeqLen); err != nil {
		return nil, nil, fmt.Errorf("training data %s: %w", in, err)
	}
	valDir, split := dir, "val"
	if cfg.Data.Val != "" {
		if valDir, err = data.EnsurePrepared(ctx, cfg.Data.Val, cache, opts); err != nil {
			tr.Close()
			return nil, nil, fmt.Errorf("held-out data: %w", err)
		}
		split = "train" // a prepared val input holds everything in its train split
		if paths, _ := data.ShardPaths(valDir, "val"); len(paths) > 0 {
			split = "val"
		}
	}
	if val, err = data.OpenDataset(valDir, split, cfg.Data.SeqLen); err != nil {
		tr.Close()
		return nil, nil, fmt.Errorf("held-out data: %w", err)
	}
	log.Info().Str("data", filepath.Clean(dir)).Int64("train_tokens", tr.Tokens()).Int64("train_windows", tr.Len()).
		Int64("val_tokens", val.Tokens()).Msg("data ready")
	return tr, val, nil
}

// stoppedEarly is err, or nil when it only says that ctx, a
// gracefulContext, ended: a Ctrl-C or SIGTERM while a node was still
// starting (joining the network, loading data) is a clean stop too.
func stoppedEarly(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		log.Info().Msg("stopped while starting")
		return nil
	}
	return err
}

// gracefulContext ends on the first SIGINT or SIGTERM, so the command can
// finish its current step and save; the handler is then removed, so a second
// signal kills the process the default way.
func gracefulContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}
