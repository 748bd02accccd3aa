package main

import (
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/torch"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print dtrain's and libdtorch's versions (also dtrain --version)",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("version takes no arguments, got %q", c.Args().Slice())
			}
			printVersion(c)
			return nil
		},
	}
}

// printVersion prints the version line of both `dtrain version` and
// `dtrain --version`.
func printVersion(c *cli.Context) {
	fmt.Fprintf(c.App.Writer, "dtrain %s (%s)\n", currentVersion(), torch.BuildInfo())
}

// currentVersion is this binary's version, from what go build embedded.
func currentVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return buildVersion(bi)
}

// pseudoVersion matches the versions the go command makes up for commits
// that carry no tag, like v0.0.0-20260801120000-3058c22abc12.
var pseudoVersion = regexp.MustCompile(`-(0\.)?[0-9]{14}-[0-9a-f]{12}(\+dirty)?$`)

// buildVersion is the version bi describes: the module's tag for `go
// install ...@v1.2.3`; for a build from a git checkout, the commit (12 hex
// digits, "-dirty" when the tree had changes) and its commit time, after
// the tag if the commit has one; "devel" when neither is known (a build
// without .git, such as the Docker image's).
func buildVersion(bi *debug.BuildInfo) string {
	if bi == nil {
		return "devel"
	}
	tag := strings.TrimSuffix(bi.Main.Version, "+dirty")
	if tag == "(devel)" || pseudoVersion.MatchString(bi.Main.Version) {
		tag = ""
	}
	vcs := map[string]string{}
	for _, s := range bi.Settings {
		vcs[s.Key] = s.Value
	}
	rev := vcs["vcs.revision"]
	if rev == "" {
		if tag == "" {
			return "devel"
		}
		return tag
	}
	v := rev[:min(12, len(rev))]
	if vcs["vcs.modified"] == "true" {
		v += "-dirty"
	}
	if t := vcs["vcs.time"]; t != "" {
		v += " " + t
	}
	if tag != "" {
		v = tag + " " + v
	}
	return v
}
