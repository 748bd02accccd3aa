package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// dtrain's exit codes, the ones scripts branch on. A graceful stop on
// SIGINT or SIGTERM is a success: the command saved and returned nil.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // the command line was wrong; nothing ran
)

// exitCodesHelp is the exit code table in `dtrain --help`.
const exitCodesHelp = `EXIT CODES:
   0  success, also when train, miner or validator stop on the first Ctrl-C (SIGINT) or SIGTERM after saving
   1  the command failed
   2  usage error: unknown command or flag, bad flag value, missing required flag, wrong positional arguments
   A second Ctrl-C kills dtrain at once; the shell then reports 128+signal (130 for SIGINT).`

// usageErr is a command line mistake: it exits with exitUsage.
type usageErr struct{ err error }

func (e usageErr) Error() string { return e.err.Error() }
func (e usageErr) Unwrap() error { return e.err }
func (e usageErr) ExitCode() int { return exitUsage }

// usageError marks err as a mistake in the command line (a wrong number of
// positional arguments, an out-of-range flag value), so dtrain exits 2.
func usageError(err error) error {
	if err == nil {
		return nil
	}
	return usageErr{err}
}

// usageErrorf is usageError(fmt.Errorf(format, args...)).
func usageErrorf(format string, args ...any) error {
	return usageError(fmt.Errorf(format, args...))
}

// exitCode is the process exit code for what the app returned.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		// urfave/cli v2 returns exit code 3 for an unknown help topic
		// (`dtrain help trian`): a usage error here.
		if ec.ExitCode() == 3 {
			return exitUsage
		}
		return ec.ExitCode()
	}
	// urfave/cli v2 keeps its missing-required-flag error type unexported
	// (errRequiredFlags in errors.go); its message is all there is to match.
	if strings.HasPrefix(err.Error(), "Required flag") {
		return exitUsage
	}
	return exitFailure
}

// onUsageError turns a flag parsing error into a usage error that names
// the closest flag, as git does, instead of urfave's whole help page.
func onUsageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		msg = "unknown flag " + dashed(name)
		var names []string
		for _, f := range c.Command.Flags {
			names = append(names, f.Names()...)
		}
		if s := closest(name, names); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", dashed(s))
		}
	}
	return usageErrorf("%s (see '%s --help')", msg, c.Command.HelpName)
}

// unknownCommand is the action of dtrain and of each command group (ckpt,
// data, ...): without arguments it shows help; with one it names the
// closest command (urfave would answer "No help topic" and exit 3).
func unknownCommand(c *cli.Context) error {
	if !c.Args().Present() {
		if c.Command.HelpName == c.App.HelpName {
			return cli.ShowAppHelp(c)
		}
		return cli.ShowSubcommandHelp(c)
	}
	name := c.Args().First()
	msg := fmt.Sprintf("unknown command %q for '%s'", name, c.Command.HelpName)
	var names []string
	for _, sub := range c.Command.Subcommands {
		if !sub.Hidden {
			names = append(names, sub.Names()...)
		}
	}
	if s := closest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return usageErrorf("%s (see '%s --help')", msg, c.Command.HelpName)
}

// withUsageErrors makes every command in cmds (and their subcommands)
// report flag mistakes through onUsageError, and gives each command group
// the unknownCommand action.
func withUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = onUsageError
		if len(c.Subcommands) > 0 && c.Action == nil {
			c.Action = unknownCommand
		}
		withUsageErrors(c.Subcommands)
	}
}

// dashed writes a flag name as typed: -h, --max-minutes.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}
