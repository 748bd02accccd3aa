package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/rs/zerolog/log"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/dash"
	"github.com/dtrain-dev/dtrain/node/validator"
	"github.com/dtrain-dev/dtrain/torch"
)

func validatorCommand() *cli.Command {
	return &cli.Command{
		Name:  "validator",
		Usage: "follow a run, join its groups as aux, probe and audit miners, and write their weights every epoch",
		Description: "Without --config, validates the default configuration (`dtrain config init --role validator` prints it).\n" +
			"Miners take it into their groups only when its peer id (logged at start, fixed by net.key_file) is in\n" +
			"their swarm.validators. Each epoch's weights go to weights.jsonl (relative to out_dir) and weights.http_url.\n" +
			"With verify.run_config naming the miners' config file, it checks the work behind diloco updates (node/verify).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "TOML configuration file"},
			setFlag(),
			&cli.StringSliceFlag{Name: "bootstrap", Usage: "override net.bootstrap (repeatable)"},
			&cli.StringSliceFlag{Name: "listen", Usage: "override net.listen (repeatable)"},
			&cli.StringFlag{Name: "out-dir", Usage: "override out_dir"},
			&cli.StringFlag{Name: "http", Aliases: []string{"metrics-addr"}, Usage: "override metrics.addr: serve the dashboard on http://ADDR/ and Prometheus metrics on /metrics (e.g. 127.0.0.1:9200)"},
		},
		Action: runValidator,
	}
}

// validatorConfig loads --config (or the defaults) and applies the
// overrides: the DTRAIN_ variables, then --set, then the dedicated flags.
func validatorConfig(c *cli.Context) (config.Validator, error) {
	cfg := config.DefaultValidator()
	if p := c.String("config"); p != "" {
		var err error
		if cfg, err = config.LoadValidator(p); err != nil {
			return cfg, err
		}
	}
	if err := applyOverrides(c, &cfg); err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	if c.IsSet("bootstrap") {
		cfg.Net.Bootstrap = c.StringSlice("bootstrap")
	}
	if c.IsSet("listen") {
		cfg.Net.Listen = c.StringSlice("listen")
	}
	if c.IsSet("out-dir") {
		cfg.OutDir = c.String("out-dir")
	}
	if c.IsSet("http") {
		cfg.Metrics.Addr = c.String("http")
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

func runValidator(c *cli.Context) (err error) {
	cfg, err := validatorConfig(c)
	if err != nil {
		return err
	}
	ctx, stop := gracefulContext(c.Context)
	defer stop()
	defer func() { err = stoppedEarly(ctx, err) }()
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return err
	}
	key := cfg.Net.KeyFile
	if key != "" && !filepath.IsAbs(key) {
		key = filepath.Join(cfg.OutDir, key)
	}
	dhtMode := netx.DHTAuto
	if len(cfg.Net.Bootstrap) == 0 {
		dhtMode = netx.DHTServer
	}
	book, err := openRoster(cfg.Swarm.Owner, cfg.Swarm.RosterFile, cfg.OutDir, cfg.RunID)
	if err != nil {
		return err
	}
	obs, err := newValidatorObserver(ctx, cfg)
	if err != nil {
		return err
	}
	defer obs.close()
	nd, err := netx.New(ctx, netx.Config{
		ListenAddrs: cfg.Net.Listen, AnnounceAddrs: cfg.Net.Announce, Bootstrap: cfg.Net.Bootstrap,
		KeyFile: key, EnableNAT: cfg.Net.NAT, DHTMode: dhtMode, Log: log.Logger,
		Admit:   config.Admission(cfg.Swarm.Members, cfg.Swarm.Validators, book),
		Metrics: obs.prom.Registerer(),
	})
	if err != nil {
		return err
	}
	defer nd.Close()
	for _, a := range nd.Addrs() {
		log.Info().Str("addr", a).Msg("listening")
	}
	warnIfNotMember(nd.ID(), cfg.Swarm.Members, cfg.Swarm.Validators, book)
	md := cfg.Model
	params := torch.NumParams(torch.NewConfig(md.NLayer, md.NHead, md.NEmbd, md.NPositions, md.VocabSize))
	obs.board.SetInfo(cfg.RunID, nd.ID().String(), params, 0)
	// A validator follows the swarm: its epoch is the swarm's.
	obs.board.SetLive(func() dash.Live {
		e := obs.board.Summary().Epoch
		return dash.Live{Peers: len(nd.Host().Network().Peers()), SwarmEpoch: e, Epoch: e}
	})
	obs.write("start", map[string]any{"peer": nd.ID().String()})
	obs.startWandb(cfg, nd.ID().String())
	opts := validator.Options{Config: cfg, Node: nd, Log: log.Logger, Roster: book, Events: obs.event}
	if cfg.Verify.RunConfig != "" {
		// The run's config also bounds the weights miners may announce
		// (its epochs' samples), in any verify.mode.
		run, err := config.LoadMiner(cfg.Verify.RunConfig)
		if err != nil {
			return fmt.Errorf("verify.run_config: %w", err)
		}
		if cfg.Verify.Mode == "auto" && run.Swarm.Mode == "diloco" {
			// The miners' training data, to recompute their batches.
			trainDS, valDS, err := openTrainData(ctx, run.Train)
			if err != nil {
				return fmt.Errorf("verify.run_config: %w", err)
			}
			defer trainDS.Close()
			if valDS != nil {
				defer valDS.Close()
			}
			opts.Train, opts.Val = trainDS, valDS
		}
		opts.Run = &run
		obs.board.SetInfo(cfg.RunID, nd.ID().String(), params, int64(run.Data.SeqLen))
	}
	v, err := validator.New(ctx, opts)
	if err != nil {
		obs.write("stop", map[string]any{"reason": "error", "error": err.Error()})
		return err
	}
	defer v.Close()
	err = v.Run(ctx)
	reason := "stopped"
	if err != nil {
		reason = "error"
	}
	obs.write("stop", map[string]any{"reason": reason})
	return err
}
