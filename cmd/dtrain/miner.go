package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rs/zerolog/log"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/dash"
	"github.com/dtrain-dev/dtrain/node/miner"
	"github.com/dtrain-dev/dtrain/node/roster"
	"github.com/dtrain-dev/dtrain/torch"
)

func minerCommand() *cli.Command {
	return &cli.Command{
		Name:  "miner",
		Usage: "train with a swarm: local steps, then average with the other miners every epoch",
		Description: "Without --config, mines the default configuration (`dtrain config init --role miner` prints it).\n" +
			"--bootstrap joins a swarm through a peer's full multiaddr (the first miner or `dtrain bootstrap`\n" +
			"prints it). Ctrl-C stops after the current epoch's local work. Its events (start, epoch, round,\n" +
			"load, error, stop) go to out_dir/metrics.jsonl, and --metrics-addr serves dtrain_miner_* metrics.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "TOML configuration file"},
			setFlag(),
			&cli.StringSliceFlag{Name: "bootstrap", Usage: "override net.bootstrap (repeatable)"},
			&cli.StringSliceFlag{Name: "listen", Usage: "override net.listen (repeatable)"},
			&cli.StringFlag{Name: "out-dir", Usage: "override out_dir"},
			&cli.StringFlag{Name: "mode", Usage: "override swarm.mode: diloco or gradients"},
			&cli.Float64Flag{Name: "max-minutes", Usage: "override train.max_minutes: stop after the epoch in which this much time has passed"},
			&cli.StringFlag{Name: "metrics-addr", Aliases: []string{"http"}, Usage: "serve Prometheus metrics on /metrics and the miner's dashboard on / here (overrides metrics.addr), e.g. 127.0.0.1:9100"},
			// A test and demo facility (node/miner Cheat, dtrain swarm --cheat), kept out of --help.
			&cli.StringFlag{Name: "cheat", Hidden: true},
			&cli.Uint64Flag{Name: "cheat-from", Value: 1, Hidden: true},
			&cli.StringFlag{Name: "cheat-dir", Hidden: true},
			&cli.Uint64Flag{Name: "cheat-seed", Hidden: true},
		}, deviceFlags()...),
		Action: runMiner,
	}
}

// minerConfig loads --config (or the defaults) and applies the overrides:
// the DTRAIN_ variables, then --set, then the dedicated flags.
func minerConfig(c *cli.Context) (config.Miner, error) {
	cfg := config.DefaultMiner()
	if p := c.String("config"); p != "" {
		var err error
		if cfg, err = config.LoadMiner(p); err != nil {
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
	if c.IsSet("mode") {
		cfg.Swarm.Mode = c.String("mode")
	}
	if c.IsSet("max-minutes") {
		cfg.Loop.MaxMinutes = c.Float64("max-minutes")
	}
	if c.IsSet("metrics-addr") {
		cfg.Metrics.Addr = c.String("metrics-addr")
	}
	applyDeviceFlags(c, &cfg.Train)
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

func runMiner(c *cli.Context) (err error) {
	cfg, err := minerConfig(c)
	if err != nil {
		return err
	}
	cheat := miner.Cheat{Kind: c.String("cheat"), From: c.Uint64("cheat-from"), Dir: c.String("cheat-dir"), Seed: c.Uint64("cheat-seed")}
	if err := cheat.Check(); err != nil {
		return err
	}
	if cfg.Threads > 0 {
		if err := torch.SetThreads(cfg.Threads); err != nil {
			return err
		}
	}
	ctx, stop := gracefulContext(c.Context)
	defer stop()
	defer func() { err = stoppedEarly(ctx, err) }()
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return err
	}
	obs, err := newMinerObserver(ctx, cfg)
	if err != nil {
		return err
	}
	defer obs.close()
	return mine(ctx, cfg, cheat, obs)
}

// mine runs the miner of cfg, its events to obs, until it stops; cheat
// is the zero Cheat but in tests and demos.
func mine(ctx context.Context, cfg config.Miner, cheat miner.Cheat, obs *minerObserver) (err error) {
	ran := false
	defer func() {
		if err != nil && !ran {
			obs.failed(err)
		}
	}()
	key := cfg.Net.KeyFile
	if key != "" && !filepath.IsAbs(key) {
		key = filepath.Join(cfg.OutDir, key)
	}
	// A miner that starts a run is the others' bootstrap peer, so it serves
	// the DHT they find each other through: in auto mode a host on a
	// private network stays a DHT client and miners that bootstrapped
	// from it would never learn each other's addresses.
	dhtMode := netx.DHTAuto
	if len(cfg.Net.Bootstrap) == 0 {
		dhtMode = netx.DHTServer
	}
	book, err := openRoster(cfg.Swarm.Owner, cfg.Swarm.RosterFile, cfg.OutDir, cfg.RunID)
	if err != nil {
		return err
	}
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
	if len(cfg.Net.Bootstrap) == 0 {
		log.Info().Str("run", cfg.RunID).Str("join_with", "--bootstrap "+joinAddr(nd.Addrs())).
			Msg("no bootstrap peers: starting a new run; other miners and validators join it through this miner")
	}
	warnIfNotMember(nd.ID(), cfg.Swarm.Members, cfg.Swarm.Validators, book)
	trainDS, valDS, err := openTrainData(ctx, cfg.Train)
	if err != nil {
		return err
	}
	defer trainDS.Close()
	if valDS != nil {
		defer valDS.Close()
	}
	m, err := miner.New(ctx, miner.Options{Config: cfg, Node: nd, Train: trainDS, Val: valDS, Log: log.Logger, Events: obs.event, Cheat: cheat, Roster: book})
	if err != nil {
		return err
	}
	defer m.Close()
	obs.board.SetLive(func() dash.Live {
		l := m.Live()
		return dash.Live{Peers: l.Peers, SwarmEpoch: l.SwarmEpoch, Epoch: l.Epoch, Phase: l.Phase}
	})
	ran = true // Run's stop event says how it ended
	return m.Run(ctx)
}

// joinAddr is the address that others on the network should bootstrap
// from: the first (QUIC first) that is not a loopback address, if any.
func joinAddr(addrs []string) string {
	for _, a := range addrs {
		if !strings.HasPrefix(a, "/ip4/127.") && !strings.HasPrefix(a, "/ip6/::1/") {
			return a
		}
	}
	if len(addrs) > 0 {
		return addrs[0]
	}
	return ""
}

// warnIfNotMember warns when this peer is missing from its allowlisted
// run's swarm.members, or from the roster it holds (and is no validator):
// the run's other peers refuse its connections.
func warnIfNotMember(id peer.ID, members, validators []string, book *roster.Book) {
	self := id.String()
	if slices.Contains(validators, self) {
		return
	}
	if len(members) > 0 && !slices.Contains(members, self) {
		log.Warn().Str("peer", self).Msg("this peer is not in swarm.members: the run's other miners and validators refuse its connections")
	}
	if book == nil {
		return
	}
	if r, ok := book.Current(); ok && !book.Admits(id) {
		log.Warn().Str("peer", self).Uint64("roster_version", r.Version).Msg("this peer is not in the run's roster: its other miners and validators refuse its connections until the owner signs a roster that lists it")
	}
}
