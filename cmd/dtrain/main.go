// Command dtrain trains GPT-2 language models, alone or in a decentralized
// swarm of miners and validators.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/log"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/torch"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "dtrain:", err)
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "dtrain",
		Usage: "train GPT-2 language models on your own machine or across a swarm of peers",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"DTRAIN_LOG_LEVEL"}},
			&cli.IntFlag{Name: "threads", Usage: "CPU threads for libtorch (default: all cores)", EnvVars: []string{"DTRAIN_THREADS"}},
		},
		Before: func(c *cli.Context) error {
			lvl, err := zerolog.ParseLevel(c.String("log-level"))
			if err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			setupLogging(lvl)
			if n := c.Int("threads"); n != 0 {
				if n < 0 {
					return fmt.Errorf("--threads must be >= 1, got %d", n)
				}
				return torch.SetThreads(n)
			}
			return nil
		},
		Commands: []*cli.Command{
			ckptCommand(),
			configCommand(),
			trainCommand(),
			generateCommand(),
			evalCommand(),
			dataCommand(),
			benchCommand(),
			bootstrapCommand(),
			minerCommand(),
			validatorCommand(),
			swarmCommand(),
			rosterCommand(),
			plotCommand(),
			{
				Name:  "version",
				Usage: "print dtrain's and libdtorch's versions",
				Action: func(c *cli.Context) error {
					v := "devel"
					if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
						v = bi.Main.Version
					}
					fmt.Fprintf(c.App.Writer, "dtrain %s (%s)\n", v, torch.BuildInfo())
					return nil
				},
			},
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main prints errors once
	}
}

// setupLogging writes human-readable logs to a terminal and JSON otherwise.
func setupLogging(lvl zerolog.Level) {
	zerolog.SetGlobalLevel(lvl)
	zerolog.DurationFieldUnit, zerolog.DurationFieldInteger = time.Millisecond, true
	if isTerminal(os.Stderr) {
		log.Logger = log.Output(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05"})
	} else {
		log.Logger = zerolog.New(os.Stderr).With().Timestamp().Logger()
	}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
