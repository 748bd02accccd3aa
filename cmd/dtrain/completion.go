package main

import (
	_ "embed"
	"fmt"

	"github.com/urfave/cli/v2"
)

// The scripts ask dtrain itself what may come next, so they never go
// stale as commands and flags change.
var (
	//go:embed completion.bash
	bashCompletion string
	//go:embed completion.zsh
	zshCompletion string
)

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script for bash or zsh",
		ArgsUsage: "bash|zsh",
		Description: "Load it in this shell:\n" +
			"   source <(dtrain completion bash)   # or zsh\n" +
			"or install it for every shell:\n" +
			"   dtrain completion bash > ~/.local/share/bash-completion/completions/dtrain\n" +
			"   dtrain completion zsh > \"${fpath[1]}/_dtrain\"",
		Action: func(c *cli.Context) error {
			scripts := map[string]string{"bash": bashCompletion, "zsh": zshCompletion}
			script, ok := scripts[c.Args().First()]
			if c.NArg() != 1 || !ok {
				return usageErrorf("completion takes one shell, bash or zsh, got %q", c.Args().Slice())
			}
			_, err := fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}
