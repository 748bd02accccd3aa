package main

import (
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst returns args (the program name first) with the flags of the
// command they run moved in front of its positional arguments, so that
// `dtrain ckpt inspect DIR --json` works: urfave/cli v2, like Go's flag
// package, stops parsing flags at the first positional argument. A flag
// keeps its value: the next argument when the flag takes one (a BoolFlag
// takes none), or its own after "=". Arguments after a literal "--" stay
// positional, and a negative number is an argument, not a flag. A global
// flag given after the command (`dtrain train --log-level debug`), which
// urfave would refuse there, moves in front of the command, unless the
// command has a flag of that name.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 || args[len(args)-1] == "--generate-bash-completion" {
		return args // completion looks at the words as typed
	}
	flags, cmds := app.Flags, app.Commands
	var leaf *cli.Command
	i, afterLeaf := 1, 1
	for i < len(args) {
		switch a := args[i]; {
		case a == "--":
			return args
		case isFlagArg(a):
			i += 1 + flagValues(flags, a)
			continue
		}
		cmd := findCommand(cmds, args[i])
		if cmd == nil {
			break
		}
		leaf, flags, cmds = cmd, cmd.Flags, cmd.Subcommands
		i++
		afterLeaf = i
	}
	// The leaf's own flags before its arguments are looked at again below:
	// a global flag among them must move too.
	i = afterLeaf
	// Only a command without subcommands takes positional arguments; args[i:]
	// are those, with flags among them.
	if leaf == nil || len(leaf.Subcommands) > 0 || leaf.SkipFlagParsing || i >= len(args) {
		return args
	}
	var globals, moved, positional []string
	rest := args[i:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			positional = append(positional, rest[j+1:]...)
			break
		}
		if !isFlagArg(a) {
			positional = append(positional, a)
			continue
		}
		if isGlobalFlag(app.Flags, flags, a) {
			end := min(j+1+flagValues(app.Flags, a), len(rest))
			globals = append(globals, rest[j:end]...)
			j = end - 1
			continue
		}
		end := min(j+1+flagValues(flags, a), len(rest))
		moved = append(moved, rest[j:end]...)
		j = end - 1
	}
	out := append(append(append(slices.Clip(args[:1]), globals...), args[1:i]...), moved...)
	if slices.ContainsFunc(positional, func(a string) bool { return strings.HasPrefix(a, "-") }) {
		out = append(out, "--") // "-", "-3" or what followed "--" must stay arguments
	}
	return append(out, positional...)
}

// isFlagArg reports whether a looks like a flag: -x, --name, --name=v; not
// "-" (often stdin) nor a negative number.
func isFlagArg(a string) bool {
	if len(a) < 2 || a[0] != '-' {
		return false
	}
	_, err := strconv.ParseFloat(a, 64)
	return err != nil
}

// isGlobalFlag reports whether flag argument a names one of the app's own
// flags (globals) and none of the command's (cmd): help and version keep
// their meaning for the command.
func isGlobalFlag(globals, cmd []cli.Flag, a string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
	switch name {
	case "help", "h", "version", "v", "generate-bash-completion":
		return false
	}
	has := func(fs []cli.Flag) bool {
		return slices.ContainsFunc(fs, func(f cli.Flag) bool { return slices.Contains(f.Names(), name) })
	}
	return has(globals) && !has(cmd)
}

// flagValues is how many of the following arguments flag argument a takes:
// 1 for a flag that takes a value written apart, 0 for a BoolFlag, for
// --name=value and for a flag nobody defined (parsing will refuse it).
func flagValues(flags []cli.Flag, a string) int {
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") {
		return 0
	}
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if v, ok := f.(interface{ TakesValue() bool }); ok && v.TakesValue() {
			return 1
		}
		return 0
	}
	return 0
}

// findCommand is the command in cmds named or aliased name, or nil.
func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
