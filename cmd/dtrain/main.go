// Command dtrain trains GPT-2 language models, alone or in a decentralized
// swarm of miners and validators.
package main

import (
	"fmt"
	"os"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/torch"
)

func main() {
	err := runCLI(newApp(), os.Args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dtrain:", err)
	}
	os.Exit(exitCode(err))
}

// runCLI runs app on args as a user types them: flags may follow
// positional arguments.
func runCLI(app *cli.App, args []string) error {
	return app.Run(flagsFirst(app, args))
}

func init() {
	// --version and `dtrain version` print the same line; no -v, which
	// many tools read as --verbose.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version", DisableDefaultText: true}
	cli.VersionPrinter = printVersion
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "dtrain",
		Usage:   "train GPT-2 language models on your own machine or across a swarm of peers",
		Version: currentVersion(), // also makes urfave add --version, which printVersion answers
		Suggest: true,
		// The exit codes close `dtrain --help`.
		CustomAppHelpTemplate: cli.AppHelpTemplate + "\n" + exitCodesHelp + "\n",
		// --generate-bash-completion (hidden) answers `dtrain completion`'s scripts.
		EnableBashCompletion: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"DTRAIN_LOG_LEVEL"}},
			&cli.StringFlag{Name: "log-format", Value: "auto", Usage: "auto (console on a terminal, JSON otherwise), json or console; NO_COLOR turns console colors off", EnvVars: []string{"DTRAIN_LOG_FORMAT"}},
			&cli.IntFlag{Name: "threads", Usage: "CPU threads for libtorch (default: all cores)", EnvVars: []string{"DTRAIN_THREADS"}},
		},
		Before: func(c *cli.Context) error {
			lvl, err := zerolog.ParseLevel(c.String("log-level"))
			if err != nil {
				return usageErrorf("--log-level: %w", err)
			}
			if err := setupLogging(lvl, c.String("log-format")); err != nil {
				return usageError(err)
			}
			if n := c.Int("threads"); n != 0 {
				if n < 0 {
					return usageErrorf("--threads must be >= 1, got %d", n)
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
			statusCommand(),
			versionCommand(),
			completionCommand(),
		},
		Action:         unknownCommand,
		OnUsageError:   onUsageError,
		ExitErrHandler: func(*cli.Context, error) {}, // main prints errors once
	}
	withUsageErrors(app.Commands)
	return app
}
