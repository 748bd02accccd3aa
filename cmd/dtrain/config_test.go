package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
