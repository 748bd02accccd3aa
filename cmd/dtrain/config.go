package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

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
				Name:  "check",
				Usage: "load a config file and report every unknown key and bad value",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "config", Required: true, Usage: "the TOML file to check"},
					&cli.StringFlag{Name: "role", Value: "train", Usage: "which config: " + roles},
				},
				Action: configCheck,
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
func configCheck(c *cli.Context) error {
	path := c.String("config")
	var err error
	switch role := c.String("role"); role {
	case "train":
		_, err = config.LoadTrain(path)
	case "miner":
		_, err = config.LoadMiner(path)
	case "validator":
		_, err = config.LoadValidator(path)
	default:
		return fmt.Errorf("--role %q: want one of %s", role, strings.Join(config.Roles(), ", "))
	}
	if err == nil {
		fmt.Fprintln(c.App.Writer, "ok")
		return nil
	}
	var list interface{ Unwrap() []error }
	if !errors.As(err, &list) {
		return err // unreadable or not TOML: one message says it
	}
	problems := list.Unwrap()
	for _, p := range problems {
		fmt.Fprintln(c.App.ErrWriter, p)
	}
	noun := "problems"
	if len(problems) == 1 {
		noun = "problem"
	}
	return cli.Exit(fmt.Sprintf("%s: %d %s", path, len(problems), noun), 1)
}
