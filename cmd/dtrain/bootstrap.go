package main

import (
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/dustin/go-humanize"
	"github.com/rs/zerolog/log"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/netx"
)

func bootstrapCommand() *cli.Command {
	return &cli.Command{
		Name:  "bootstrap",
		Usage: "run a bootstrap node: a DHT server (and optionally a circuit relay) that peers start from",
		Description: "Prints the node's full multiaddrs, one per line, then runs until Ctrl-C or SIGTERM.\n" +
			"Give those addresses to miners and validators as their bootstrap peers.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "listen", Usage: "multiaddr to listen on (repeatable)",
				Value: cli.NewStringSlice("/ip4/0.0.0.0/udp/4001/quic-v1", "/ip4/0.0.0.0/tcp/4001")},
			&cli.StringFlag{Name: "key", Usage: "identity key file, created on first start (default: ~/.config/dtrain/bootstrap.key)"},
			&cli.StringSliceFlag{Name: "announce", Usage: "multiaddr to announce instead of the listen addresses (repeatable), e.g. a public IP"},
			&cli.BoolFlag{Name: "relay-service", Value: true, Usage: "relay connections for peers that cannot accept inbound ones"},
			&cli.StringFlag{Name: "relay-data", Value: "128KiB", Usage: "bytes each way after which a relayed connection is reset; 0: no limit. " +
				"Only a relay with no limit at all (--relay-data 0 --relay-duration 0) carries all-reduce rounds, at the cost of its own bandwidth"},
			&cli.DurationFlag{Name: "relay-duration", Value: netx.DefaultRelayLimit.Duration, Usage: "time after which a relayed connection is reset; 0: no limit"},
			&cli.StringSliceFlag{Name: "peers", Usage: "other bootstrap nodes' full multiaddrs (repeatable)"},
		},
		Action: runBootstrap,
	}
}

func runBootstrap(c *cli.Context) error {
	key := c.String("key")
	if key == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return fmt.Errorf("--key not given and no config directory: %w", err)
		}
		key = filepath.Join(dir, "dtrain", "bootstrap.key")
	}
	limit, err := relayLimit(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := netx.New(ctx, netx.Config{
		ListenAddrs:   c.StringSlice("listen"),
		AnnounceAddrs: c.StringSlice("announce"),
		KeyFile:       key,
		Bootstrap:     c.StringSlice("peers"),
		DHTMode:       netx.DHTServer,
		RelayService:  c.Bool("relay-service"),
		RelayLimit:    &limit,
		Log:           log.Logger,
	})
	if err != nil {
		return fmt.Errorf("start bootstrap node: %w", err)
	}
	for _, a := range n.Addrs() {
		fmt.Fprintln(c.App.Writer, a)
	}
	log.Info().Stringer("peer", n.ID()).Str("key", key).Bool("relay", c.Bool("relay-service")).Stringer("relay_limit", limit).Msg("bootstrap node running; Ctrl-C stops it")
	<-ctx.Done()
	if err := n.Close(); err != nil {
		return err
	}
	log.Info().Msg("bootstrap node stopped")
	return nil
}

// relayLimit reads --relay-data and --relay-duration.
func relayLimit(c *cli.Context) (netx.RelayLimit, error) {
	data, err := humanize.ParseBytes(c.String("relay-data"))
	if err != nil || data > math.MaxInt64 {
		return netx.RelayLimit{}, usageErrorf("--relay-data %q: want a size such as 128KiB, 1GiB or 0", c.String("relay-data"))
	}
	d := c.Duration("relay-duration")
	if d < 0 {
		return netx.RelayLimit{}, usageErrorf("--relay-duration %v: want 0 (no limit) or more", d)
	}
	return netx.RelayLimit{Data: int64(data), Duration: d}, nil
}
