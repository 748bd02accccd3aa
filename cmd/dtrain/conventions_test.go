package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/log"
	"github.com/urfave/cli/v2"
)

// TestCLISuggests checks that a mistyped command or flag, at any depth,
// is refused as a usage error that names what was meant.
func TestCLISuggests(t *testing.T) {
	cases := []struct {
		args []string
		want string // "" when nothing is near enough to suggest
	}{
		{[]string{"trian"}, `did you mean "train"?`},
		{[]string{"ckpt", "inspct", "x"}, `did you mean "inspect"?`},
		{[]string{"data", "prepar"}, `did you mean "prepare"?`},
		{[]string{"train", "--max-minute", "1"}, "did you mean --max-minutes?"},
		{[]string{"--log-levl", "debug", "version"}, "did you mean --log-level?"},
		{[]string{"ckpt", "inspect", "--jsn", "x"}, "did you mean --json?"},
		{[]string{"xyzzy"}, ""},
		{[]string{"ckpt", "init", "--wibble"}, ""},
	}
	for _, tc := range cases {
		out, err := run(t, tc.args...)
		if code := exitCode(err); code != exitUsage {
			t.Errorf("dtrain %s: exit %d (%v), want %d", strings.Join(tc.args, " "), code, err, exitUsage)
			continue
		}
		msg := err.Error()
		if tc.want == "" && strings.Contains(msg, "did you mean") || !strings.Contains(msg, tc.want) {
			t.Errorf("dtrain %s: %q, want it to say %q", strings.Join(tc.args, " "), msg, tc.want)
		}
		if strings.Contains(out, "USAGE:") {
			t.Errorf("dtrain %s printed the whole help page:\n%s", strings.Join(tc.args, " "), out)
		}
	}
}

func TestClosest(t *testing.T) {
	names := []string{"train", "generate", "eval", "data", "max-minutes", "metrics-addr", "log-level", "h"}
	cases := []struct{ typed, want string }{
		{"trian", "train"},  // a swap is one edit
		{"tran", "train"},   // one deletion
		{"gen", "generate"}, // a prefix of three letters
		{"max-minute", "max-minutes"},
		{"evl", "eval"},
		{"x", ""},          // one letter is near everything short
		{"checkpoint", ""}, // far from all
		{"log-lvel", "log-level"},
	}
	for _, tc := range cases {
		if got := closest(tc.typed, names); got != tc.want {
			t.Errorf("closest(%q) = %q, want %q", tc.typed, got, tc.want)
		}
	}
}

// TestCLIExitCodes checks the table in `dtrain --help`: 0 success, 1 a
// failed command, 2 a wrong command line.
func TestCLIExitCodes(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"version"}, exitOK},
		{[]string{"--version"}, exitOK},
		{[]string{}, exitOK},
		{[]string{"ckpt"}, exitOK},
		{[]string{"trian"}, exitUsage},
		{[]string{"help", "trian"}, exitUsage},
		{[]string{"ckpt", "nope"}, exitUsage},
		{[]string{"ckpt", "init"}, exitUsage}, // --out is required
		{[]string{"--threads", "many", "version"}, exitUsage},
		{[]string{"--threads", "-2", "version"}, exitUsage},
		{[]string{"--log-level", "loud", "version"}, exitUsage},
		{[]string{"--log-format", "xml", "version"}, exitUsage},
		{[]string{"ckpt", "inspect"}, exitUsage},
		{[]string{"ckpt", "inspect", "a", "b"}, exitUsage},
		{[]string{"data", "inspect"}, exitUsage},
		{[]string{"plot", dir}, exitUsage}, // no --out
		{[]string{"roster", "key"}, exitUsage},
		{[]string{"version", "extra"}, exitUsage},
		{[]string{"completion", "fish"}, exitUsage},
		{[]string{"ckpt", "inspect", filepath.Join(dir, "missing")}, exitFailure},
	}
	for _, tc := range cases {
		_, err := run(t, tc.args...)
		if got := exitCode(err); got != tc.want {
			t.Errorf("dtrain %s: exit %d (%v), want %d", strings.Join(tc.args, " "), got, err, tc.want)
		}
	}
	out, err := run(t, "--help")
	if err != nil || !strings.Contains(out, "EXIT CODES:") || !strings.Contains(out, "2  usage error") {
		t.Errorf("dtrain --help (%v) lacks the exit code table:\n%s", err, out)
	}
}

func TestFlagsFirst(t *testing.T) {
	app := &cli.App{
		Flags: []cli.Flag{&cli.StringFlag{Name: "log-level"}, &cli.BoolFlag{Name: "quiet"}},
		Commands: []*cli.Command{{
			Name: "grp",
			Subcommands: []*cli.Command{{
				Name: "leaf",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json"},
					&cli.StringFlag{Name: "out", Aliases: []string{"o"}},
					&cli.IntFlag{Name: "offset"},
				},
			}},
		}},
	}
	cases := []struct{ args, want string }{
		{"grp leaf DIR --json", "grp leaf --json DIR"},
		{"grp leaf DIR --out x.png", "grp leaf --out x.png DIR"},
		{"grp leaf DIR -o x.png A", "grp leaf -o x.png DIR A"},
		{"grp leaf DIR --out=x.png --json=false", "grp leaf --out=x.png --json=false DIR"},
		{"grp leaf --json DIR", "grp leaf --json DIR"},
		{"--log-level debug --quiet grp leaf DIR --json", "--log-level debug --quiet grp leaf --json DIR"},
		{"grp leaf DIR --offset -3", "grp leaf --offset -3 DIR"},
		{"grp leaf -3 --json", "grp leaf --json -- -3"},      // a negative number is an argument
		{"grp leaf DIR -- --json", "grp leaf -- DIR --json"}, // after --, all are arguments
		{"grp leaf DIR --bogus x", "grp leaf --bogus DIR x"}, // parsing will refuse --bogus
		{"grp leaf DIR --out", "grp leaf --out DIR"},         // parsing will say --out needs a value
		{"grp DIR --json", "grp DIR --json"},                 // not a command without subcommands
		{"nope DIR --json", "nope DIR --json"},
		{"-- grp leaf DIR --json", "-- grp leaf DIR --json"},
		{"grp leaf DIR --json --generate-bash-completion", "grp leaf DIR --json --generate-bash-completion"},
		// Global flags after the command move in front of it; help stays the command's.
		{"grp leaf DIR --log-level debug --quiet", "--log-level debug --quiet grp leaf DIR"},
		{"grp leaf --log-level=warn --json DIR", "--log-level=warn grp leaf --json DIR"},
		{"grp leaf --help", "grp leaf --help"},
	}
	for _, tc := range cases {
		got := flagsFirst(app, append([]string{"dtrain"}, strings.Fields(tc.args)...))
		if want := append([]string{"dtrain"}, strings.Fields(tc.want)...); !slices.Equal(got, want) {
			t.Errorf("flagsFirst(%s) = %q, want %q", tc.args, got[1:], want[1:])
		}
	}
}

// TestCLIFlagsAfterArguments runs commands as people type them, with their
// flags after the directory.
func TestCLIFlagsAfterArguments(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "tiny")
	if out, err := run(t, "ckpt", "init", "--out", ckpt, "--layers", "1", "--heads", "2", "--embd", "16", "--ctx", "16", "--vocab", "64"); err != nil {
		t.Fatalf("ckpt init: %v\n%s", err, out)
	}
	out, err := run(t, "ckpt", "inspect", ckpt, "--json")
	if err != nil {
		t.Fatalf("ckpt inspect DIR --json: %v\n%s", err, out)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Errorf("ckpt inspect DIR --json printed no JSON (%v):\n%s", err, out)
	}
	shards := filepath.Join(dir, "shards")
	corpus := filepath.Join(dir, "corpus.txt")
	must(t, os.WriteFile(corpus, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 200)), 0o644))
	if out, err := run(t, "data", "prepare", "--in", corpus, "--out", shards, "--val-fraction", "0"); err != nil {
		t.Fatalf("data prepare: %v\n%s", err, out)
	}
	out, err = run(t, "data", "inspect", shards, "--preview", "3", "--json")
	if err != nil {
		t.Fatalf("data inspect DIR --preview 3 --json: %v\n%s", err, out)
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Errorf("data inspect DIR --preview 3 --json printed no JSON (%v):\n%s", err, out)
	}
}

func TestVersion(t *testing.T) {
	byCommand, err := run(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	byFlag, err := run(t, "--version")
	if err != nil {
		t.Fatal(err)
	}
	if byCommand != byFlag || !strings.HasPrefix(byCommand, "dtrain ") || !strings.Contains(byCommand, "(") {
		t.Errorf("dtrain version printed %q, dtrain --version %q; want one line, dtrain VERSION (libdtorch ...)", byCommand, byFlag)
	}

	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	const rev = "3058c22abc1234567890abcdef1234567890abcd"
	cases := []struct {
		name, main string
		settings   []debug.BuildSetting
		want       string
	}{
		{"go install @tag", "v1.2.3", nil, "v1.2.3"},
		{"no vcs (docker)", "(devel)", nil, "devel"},
		{"checkout", "v0.0.0-20260801120000-3058c22abc12", vcs("vcs.revision", rev, "vcs.time", "2026-08-01T12:00:00Z", "vcs.modified", "false"),
			"3058c22abc12 2026-08-01T12:00:00Z"},
		{"dirty checkout", "v0.0.0-20260801120000-3058c22abc12+dirty", vcs("vcs.revision", rev, "vcs.time", "2026-08-01T12:00:00Z", "vcs.modified", "true"),
			"3058c22abc12-dirty 2026-08-01T12:00:00Z"},
		{"tagged checkout", "v1.2.3+dirty", vcs("vcs.revision", rev, "vcs.modified", "true"), "v1.2.3 3058c22abc12-dirty"},
	}
	for _, tc := range cases {
		bi := &debug.BuildInfo{Main: debug.Module{Version: tc.main}, Settings: tc.settings}
		if got := buildVersion(bi); got != tc.want {
			t.Errorf("%s: buildVersion = %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := buildVersion(nil); got != "devel" {
		t.Errorf("buildVersion(nil) = %q, want devel", got)
	}
}

func TestCompletion(t *testing.T) {
	script, err := run(t, "completion", "bash")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-n")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bash -n on dtrain completion bash: %v\n%s", err, out)
	}
	// Complete "dtrain tr<TAB>" against a stand-in dtrain that records what
	// it was asked and answers as the real one does.
	probe := script + `
dtrain() { printf '%s\n' "$*" > "$ARGS"; printf 'train\ntrain-more\ngenerate\n'; }
COMP_WORDS=(dtrain --log-level debug tr); COMP_CWORD=3
_dtrain_complete
printf '%s\n' "${COMPREPLY[@]}"`
	argsFile := filepath.Join(t.TempDir(), "args")
	cmd = exec.Command("bash", "-c", probe)
	cmd.Env = append(os.Environ(), "ARGS="+argsFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, []string{"train", "train-more"}) {
		t.Errorf("dtrain tr<TAB> offered %q, want train and train-more", got)
	}
	if asked, _ := os.ReadFile(argsFile); strings.TrimSpace(string(asked)) != "--log-level debug --generate-bash-completion" {
		t.Errorf("the script ran dtrain %q", asked)
	}

	zsh, err := run(t, "completion", "zsh")
	if err != nil || !strings.HasPrefix(zsh, "#compdef dtrain") {
		t.Errorf("dtrain completion zsh (%v) printed:\n%s", err, zsh)
	}

	// urfave reads the words before the last from os.Args, not from Run's.
	args := []string{"dtrain", "--generate-bash-completion"}
	defer func(saved []string) { os.Args = saved }(os.Args)
	os.Args = args
	var buf bytes.Buffer
	app := newApp()
	app.Writer = &buf
	if err := runCLI(app, args); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"train", "ckpt", "completion", "version"} {
		if !slices.Contains(strings.Fields(buf.String()), want) {
			t.Errorf("dtrain --generate-bash-completion lacks %q:\n%s", want, buf.String())
		}
	}
}

// TestLogLibp2pIsZerologJSON checks that go-libp2p's loggers (gologshim,
// log/slog) and go-log's (zap) write zerolog lines, warn and above.
func TestLogLibp2pIsZerologJSON(t *testing.T) {
	var buf bytes.Buffer
	defer func(l zerolog.Logger, lvl zerolog.Level) {
		log.Logger = l
		zerolog.SetGlobalLevel(lvl)
		setLibp2pLevel(lvl)
	}(log.Logger, zerolog.GlobalLevel())
	l, err := newLogger(&buf, "json", false, false)
	must(t, err)
	log.Logger = l
	zerolog.SetGlobalLevel(zerolog.InfoLevel)
	setLibp2pLevel(zerolog.InfoLevel)

	zapLog := golog.Logger("dtrain-test-zap")
	zapLog.Infow("connection chatter", "peer", "12D3")
	zapLog.Warnw("dial failed", "peer", "12D3", "attempts", 3)
	slogLog := gologshim.Logger("dtrain-test-slog")
	slogLog.Info("connection chatter")
	slogLog.Error("stream reset", "protocol", "/dtrain/1")

	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		lines = append(lines, m)
	}
	want := []map[string]any{
		{"level": "warn", "logger": "dtrain-test-zap", "message": "dial failed", "peer": "12D3", "attempts": 3.0},
		{"level": "error", "logger": "dtrain-test-slog", "message": "stream reset", "protocol": "/dtrain/1"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d (info filtered out):\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v\n%s", i, k, lines[i][k], v, buf.String())
			}
		}
		if _, ok := lines[i]["time"]; !ok {
			t.Errorf("line %d has no zerolog time field", i)
		}
	}
}

func TestLogFormat(t *testing.T) {
	cases := []struct {
		format        string
		tty, noColor  bool
		json, colored bool
	}{
		{"auto", false, false, true, false},
		{"auto", true, false, false, true},
		{"auto", true, true, false, false},
		{"json", true, false, true, false},
		{"console", false, false, false, true},
		{"console", false, true, false, false},
	}
	for _, tc := range cases {
		var buf bytes.Buffer
		l, err := newLogger(&buf, tc.format, tc.tty, tc.noColor)
		must(t, err)
		l.Info().Int("step", 3).Msg("hello")
		isJSON := json.Valid(bytes.TrimSpace(buf.Bytes()))
		colored := strings.Contains(buf.String(), "\x1b[")
		if isJSON != tc.json || colored != tc.colored {
			t.Errorf("--log-format %s, terminal %v, NO_COLOR %v: wrote %q (JSON %v, colors %v), want JSON %v, colors %v",
				tc.format, tc.tty, tc.noColor, buf.String(), isJSON, colored, tc.json, tc.colored)
		}
	}
	if _, err := newLogger(&bytes.Buffer{}, "xml", false, false); err == nil {
		t.Error("--log-format xml accepted")
	}
}
