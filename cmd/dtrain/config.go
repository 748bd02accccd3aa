package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/rs/zerolog/log"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/node/config"
)

func configCommand() *cli.Command {
	roles := strings.Join(config.Roles(), ", ")
	return &cli.Command{
		Name:  "config",
		Usage: "write and check dtrain's TOML config files",
		Subcommands: []*cli.Command{
			{
				Name:  "init",
				Usage: "print a config file with every default and what it means (or write it to --out)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "role", Value: "train", Usage: "which config: " + roles},
					&cli.StringFlag{Name: "out", Usage: "write the file here instead of to stdout"},
					&cli.BoolFlag{Name: "force", Usage: "overwrite --out if it exists"},
				},
				Action: configInit,
			},
			{
				Name: "check",
				Usage: "load a config file with the DTRAIN_ variables and --set over it, as the role's command does, " +
					"and report every unknown key and bad value",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "config", Required: true, Usage: "the TOML file to check"},
					&cli.StringFlag{Name: "role", Value: "train", Usage: "which config: " + roles},
					setFlag(),
				},
				Action: configCheck,
			},
			{
				Name: "show",
				Usage: "print the configuration the role's command would run with: --config (or the defaults), " +
					"then the DTRAIN_ variables, then --set",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "config", Usage: "the TOML file; empty = the defaults"},
					&cli.StringFlag{Name: "role", Value: "train", Usage: "which config: " + roles},
					setFlag(),
				},
				Action: configShow,
			},
		},
	}
}

func configInit(c *cli.Context) error {
	tmpl, err := config.Template(c.String("role"))
	if err != nil {
		return err
	}
	out := c.String("out")
	if out == "" {
		_, err := c.App.Writer.Write(tmpl)
		return err
	}
	// O_EXCL makes "does it exist" and "create it" one step.
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if c.Bool("force") {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(out, flags, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists (use --force to overwrite it)", out)
	}
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := f.Write(tmpl); err != nil {
		f.Close()
		return fmt.Errorf("write config %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write config %s: %w", out, err)
	}
	return nil
}

// configCheck prints "ok", or each problem on its own line and fails.
// Without --role, a file that is no train config but fits another role's
// gets that said instead of a list of the other role's keys as unknown.
func configCheck(c *cli.Context) error {
	path := c.String("config")
	role := c.String("role")
	fit, fitErr := config.RolesFor(path)
	if fitErr == nil && len(fit) > 0 && !slices.Contains(fit, role) && !c.IsSet("role") {
		return cli.Exit(fmt.Sprintf("%s: %s", path, roleHint(fit)), 1)
	}
	_, err := effectiveConfig(c, role, path)
	if err == nil {
		fmt.Fprintln(c.App.Writer, "ok")
		return nil
	}
	if fitErr == nil && len(fit) > 0 && !slices.Contains(fit, role) {
		err = errors.Join(err, errors.New(roleHint(fit)))
	}
	return reportProblems(c, path, err)
}

// configShow prints the role's effective config as a commented TOML file,
// and fails as config check does when it is not one the role can run.
func configShow(c *cli.Context) error {
	path := c.String("config")
	text, err := effectiveConfig(c, c.String("role"), path)
	if text != nil {
		if _, werr := c.App.Writer.Write(text); werr != nil {
			return werr
		}
	}
	if err != nil {
		if path == "" {
			path = "configuration"
		}
		return reportProblems(c, path, err)
	}
	return nil
}

// roleHint says which role's command a file is for.
func roleHint(roles []string) string {
	flags := make([]string, len(roles))
	for i, r := range roles {
		flags[i] = "--role " + r
	}
	return fmt.Sprintf("this looks like a %s config: run with %s", strings.Join(roles, " or "), strings.Join(flags, " or "))
}

// effectiveConfig is the role's config as its command would build it
// before its dedicated flags (path or the defaults, the DTRAIN_ variables,
// --set), written as TOML, and what Validate finds wrong with it. The text
// is nil when the config cannot be built.
func effectiveConfig(c *cli.Context, role, path string) ([]byte, error) {
	switch role {
	case "train":
		return effective[config.Train](c, path)
	case "miner":
		return effective[config.Miner](c, path)
	case "validator":
		return effective[config.Validator](c, path)
	}
	return nil, fmt.Errorf("--role %q: want one of %s", role, strings.Join(config.Roles(), ", "))
}

func effective[T config.Role](c *cli.Context, path string) ([]byte, error) {
	cfg := config.Default[T]()
	if path != "" {
		var err error
		if cfg, err = config.Load[T](path); err != nil {
			return nil, err
		}
	}
	if err := applyOverrides(c, &cfg); err != nil {
		return nil, err
	}
	text, err := config.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return text, cfg.Validate()
}

// reportProblems prints each of err's problems on its own line and fails
// with their count.
func reportProblems(c *cli.Context, path string, err error) error {
	var list interface{ Unwrap() []error }
	if !errors.As(err, &list) {
		return err // unreadable or not TOML: one message says it
	}
	var problems []error
	for _, e := range list.Unwrap() {
		// Validate's joined problems may sit inside a join with a hint.
		if inner, ok := e.(interface{ Unwrap() []error }); ok {
			problems = append(problems, inner.Unwrap()...)
			continue
		}
		problems = append(problems, e)
	}
	for _, p := range problems {
		fmt.Fprintln(c.App.ErrWriter, p)
	}
	noun := "problems"
	if len(problems) == 1 {
		noun = "problem"
	}
	return cli.Exit(fmt.Sprintf("%s: %d %s", path, len(problems), noun), 1)
}

// setFlag is --set, on every command that reads a config. A flag of its
// own type: a StringSliceFlag would split "net.bootstrap=a,b" at the comma.
func setFlag() cli.Flag {
	return &cli.GenericFlag{
		Name:  "set",
		Value: &assignments{},
		Usage: "override a config key, as KEY=VALUE with the key dotted as in the file (swarm.mode=gradients, " +
			"train.max_steps=100, lists comma-separated); repeatable, over the file and the DTRAIN_ variables",
	}
}

// assignments are the values of --set, in order.
type assignments []string

func (a *assignments) Set(s string) error { *a = append(*a, s); return nil }
func (a *assignments) String() string     { return strings.Join(*a, " ") }

// applyOverrides sets the keys that DTRAIN_<SECTION>_<KEY> variables name
// in cfg, then those of --set, and logs each key the environment set (its
// value too, unless the key looks secret).
func applyOverrides[T config.Role](c *cli.Context, cfg *T) error {
	set, err := config.ApplyEnv(cfg, os.LookupEnv)
	if err != nil {
		return err
	}
	for _, s := range set {
		ev := log.Info().Str("key", s.Key).Str("env", s.Var)
		if !config.Sensitive(s.Key) {
			ev = ev.Str("value", s.Value)
		}
		ev.Msg("config key from the environment")
	}
	var list []string
	if a, ok := c.Generic("set").(*assignments); ok && a != nil {
		list = *a
	}
	return config.ApplySet(cfg, list)
}
