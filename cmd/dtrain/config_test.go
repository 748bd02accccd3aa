package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/log"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/node/config"
)

// TestConfigInitThenCheck is the first thing a user does: write the
// template, check it, break it, check it again.
func TestConfigInitThenCheck(t *testing.T) {
	want, err := config.Template("train")
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "config", "init", "--role", "train")
	if err != nil || out != string(want) {
		t.Fatalf("config init to stdout: err %v, printed %d bytes, want the %d-byte template", err, len(out), len(want))
	}

	path := filepath.Join(t.TempDir(), "train.toml")
	if out, err := run(t, "config", "init", "--out", path); err != nil || out != "" {
		t.Fatalf("config init --out: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(path); string(got) != string(want) {
		t.Fatalf("config init --out wrote %d bytes, want the template", len(got))
	}
	if out, err := run(t, "config", "check", "--config", path); err != nil || out != "ok\n" {
		t.Fatalf("config check of the template: %v\n%s", err, out)
	}

	broken := strings.Replace(string(want), "\nlr = ", "\nlrr = ", 1)
	if broken == string(want) {
		t.Fatal("the template has no lr key to misspell")
	}
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "config", "check", "--config", path)
	if err == nil || !strings.Contains(err.Error(), "1 problem") {
		t.Errorf("config check of a broken file: err = %v, want one problem counted", err)
	}
	if !strings.Contains(out, "optim.lrr: unknown key (did you mean optim.lr?)") {
		t.Errorf("config check printed %q, want the unknown key and a suggestion", out)
	}
}

func TestConfigInitRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "train.toml")
	if err := os.WriteFile(path, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, "config", "init", "--out", path)
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("config init over an existing file: err = %v, want a refusal mentioning --force", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "mine\n" {
		t.Fatalf("the existing file was changed to %q", got)
	}
	if _, err := run(t, "config", "init", "--out", path, "--force"); err != nil {
		t.Fatalf("config init --force: %v", err)
	}
	if got, _ := os.ReadFile(path); !strings.Contains(string(got), "run_id = ") {
		t.Fatalf("--force did not write the template: %q", got)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[optim\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown role", []string{"config", "init", "--role", "auditor"}, "known roles: train"},
		{"missing file", []string{"config", "check", "--config", filepath.Join(dir, "nope.toml")}, "nope.toml"},
		{"not TOML", []string{"config", "check", "--config", bad}, bad + ":1:7:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("dtrain %s: err = %v, want it to contain %q", strings.Join(tc.args, " "), err, tc.want)
			}
		})
	}
}

// TestValidatorConfigInitThenCheck: the validator template checks clean
// under --role validator, and a misspelt key in it is found.
func TestValidatorConfigInitThenCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "validator.toml")
	if out, err := run(t, "config", "init", "--role", "validator", "--out", path); err != nil || out != "" {
		t.Fatalf("config init --role validator: %v\n%s", err, out)
	}
	if out, err := run(t, "config", "check", "--role", "validator", "--config", path); err != nil || out != "ok\n" {
		t.Fatalf("config check of the validator template: %v\n%s", err, out)
	}
	text, _ := os.ReadFile(path)
	broken := strings.Replace(string(text), "\nvalidators = ", "\nvalidator = ", 1)
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "config", "check", "--role", "validator", "--config", path)
	if err == nil || !strings.Contains(out, "swarm.validator: unknown key") {
		t.Errorf("config check of a broken validator file: err %v, printed %q", err, out)
	}
}

// TestConfigOverridePrecedence: defaults < file < DTRAIN_ variables <
// --set < the dedicated flags, as config show prints it and as the
// commands that run a config apply it (each case fails before starting).
func TestConfigOverridePrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "miner.toml")
	file := "run_id = \"from-file\"\n[swarm]\nmode = \"diloco\"\ninner_steps = 7\nmin_group = 3\n[train]\nmax_steps = 50\n"
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DTRAIN_SWARM_INNER_STEPS", "8")
	t.Setenv("DTRAIN_TRAIN_MAX_STEPS", "60")
	t.Setenv("DTRAIN_SWARM_MODE", "gradients")
	out, err := run(t, "config", "show", "--role", "miner", "--config", path, "--set", "train.max_steps=70",
		"--set", "net.bootstrap=/ip4/10.0.0.1/tcp/4002/p2p/12D3KooWAbV1V6a9yGG9hAuhBXDAJk1jPnDR8CEdNq3ZrqQpT1Ru,/ip4/10.0.0.2/tcp/4002/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo")
	if err != nil {
		t.Fatalf("config show: %v\n%s", err, out)
	}
	for _, want := range []string{
		"\nrun_id = \"from-file\"\n", "\nmin_group = 3\n", // file over defaults
		"\ninner_steps = 8\n", "\nmode = \"gradients\"\n", // variables over the file
		"\nmax_steps = 70\n", // --set over the variables
		"/ip4/10.0.0.1/tcp/4002/p2p/12D3KooWAbV1V6a9yGG9hAuhBXDAJk1jPnDR8CEdNq3ZrqQpT1Ru\", \"/ip4/10.0.0.2", // a list item per comma
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config show lacks %q:\n%s", want, out)
		}
	}
	for _, k := range []string{"DTRAIN_SWARM_INNER_STEPS", "DTRAIN_TRAIN_MAX_STEPS", "DTRAIN_SWARM_MODE"} {
		os.Unsetenv(k)
	}

	for _, tc := range []struct {
		env, val string
		args     []string
		want     string
	}{
		{"DTRAIN_PRECISION", "fp16", []string{"train", "--set", "precision=fp8"}, `precision: must be auto, fp32 or bf16 (got "fp8")`},
		{"", "", []string{"train", "--set", "precision=fp16", "--precision", "fp8"}, `(got "fp8")`},
		{"DTRAIN_DEVICE", "tpu", []string{"miner", "--set", "device=gpu"}, `device: must be cpu, cuda or cuda:N (got "gpu")`},
		{"DTRAIN_TRAIN_MAX_STEPS", "abc", []string{"train"}, `$DTRAIN_TRAIN_MAX_STEPS: train.max_steps: want an integer (got "abc")`},
		{"", "", []string{"miner", "--set", "swarm.mdoe=gradients"}, "--set: swarm.mdoe: unknown key (did you mean swarm.mode?)"},
		{"", "", []string{"validator", "--set", "verify.windows=2"}, "verify.windows: must be >= 6"},
		{"", "", []string{"validator", "--set", "verify.power_z=0"}, "verify.power_z: must be > 0"},
		{"", "", []string{"validator", "--set", "net.bootstrap=/ip4/1.2.3.4/udp/4001/quic-v1"}, "net.bootstrap: must list full multiaddrs ending in the peer's id"},
		{"", "", []string{"config", "check", "--role", "miner", "--config", path, "--set", "swarm.max_group=2"}, "swarm.max_group: must be at least min_group (3)"},
	} {
		if tc.env != "" {
			t.Setenv(tc.env, tc.val)
		}
		out, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error()+out, tc.want) {
			t.Errorf("%s=%s dtrain %v: err %v (output %q), want %q", tc.env, tc.val, tc.args, err, out, tc.want)
		}
		if tc.env != "" {
			os.Unsetenv(tc.env)
		}
	}
}

// TestConfigCheckGuessesRole: a miner's or validator's file checked
// without --role is recognized, not reported key by key as unknown.
func TestConfigCheckGuessesRole(t *testing.T) {
	dir := t.TempDir()
	for _, role := range []string{"miner", "validator"} {
		path := filepath.Join(dir, role+".toml")
		if _, err := run(t, "config", "init", "--role", role, "--out", path); err != nil {
			t.Fatal(err)
		}
		out, err := run(t, "config", "check", "--config", path)
		want := "this looks like a " + role + " config: run with --role " + role
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(out, "unknown key") {
			t.Errorf("config check %s without --role: err %v, output %q; want only %q", role, err, out, want)
		}
	}
	out, err := run(t, "config", "check", "--role", "validator", "--config", filepath.Join(dir, "miner.toml"))
	if err == nil || !strings.Contains(out, "unknown key") || !strings.Contains(out, "this looks like a miner config: run with --role miner") {
		t.Errorf("config check --role validator of a miner file: err %v, output %q; want its problems and the hint", err, out)
	}
	path := filepath.Join(dir, "shared.toml")
	if err := os.WriteFile(path, []byte("[net]\nnat = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "config", "check", "--config", path); err == nil || !strings.Contains(err.Error(), "run with --role miner or --role validator") {
		t.Errorf("config check of a file both a miner and a validator could read: err %v", err)
	}
}

// TestConfigEnvLogged: each key a variable sets is logged with its
// variable, and the value only where the key does not look secret.
func TestConfigEnvLogged(t *testing.T) {
	var buf bytes.Buffer
	defer func(l zerolog.Logger) { log.Logger = l }(log.Logger)
	log.Logger = zerolog.New(&buf)
	t.Setenv("DTRAIN_SWARM_MODE", "gradients")
	t.Setenv("DTRAIN_NET_KEY_FILE", "/secrets/peer-7.key")
	cfg := config.DefaultMiner()
	if err := applyOverrides(cli.NewContext(cli.NewApp(), flag.NewFlagSet("test", flag.ContinueOnError), nil), &cfg); err != nil {
		t.Fatal(err)
	}
	logged := buf.String()
	for _, want := range []string{`"key":"swarm.mode","env":"DTRAIN_SWARM_MODE","value":"gradients"`, `"key":"net.key_file","env":"DTRAIN_NET_KEY_FILE"`} {
		if !strings.Contains(logged, want) {
			t.Errorf("log lacks %s:\n%s", want, logged)
		}
	}
	if strings.Contains(logged, "peer-7") {
		t.Errorf("log shows a key's value:\n%s", logged)
	}
	if cfg.Swarm.Mode != "gradients" || cfg.Net.KeyFile != "/secrets/peer-7.key" {
		t.Errorf("config: mode %q key_file %q", cfg.Swarm.Mode, cfg.Net.KeyFile)
	}
}
