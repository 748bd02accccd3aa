package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestValidatorTemplateLoads: the validator template decodes to exactly
// the defaults and documents its tables.
func TestValidatorTemplateLoads(t *testing.T) {
	text, err := Template("validator")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\n[swarm]\n", "validators = []", "\n[probe]\n", "\n[score]\n", "\n[weights]\n", "jsonl = \"weights.jsonl\"",
		"# The run's rules the validator follows", "\n[verify]\n", "mode = \"auto\"", "run_config = \"\""} {
		if !strings.Contains(string(text), want) {
			t.Errorf("validator template lacks %q", want)
		}
	}
	path := filepath.Join(t.TempDir(), "validator.toml")
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := LoadValidator(path)
	if err != nil {
		t.Fatalf("LoadValidator(template): %v", err)
	}
	if !reflect.DeepEqual(v, DefaultValidator()) {
		t.Fatalf("template decodes to %+v, want the defaults %+v", v, DefaultValidator())
	}
}

// TestValidatorConfigErrors: unknown keys and impossible values are all
// reported with their keys, and a validator id that is no peer id too, in
// the validator's and the miner's config alike.
func TestValidatorConfigErrors(t *testing.T) {
	doc := `run_id = "a b"
[swarm]
validators = ["12D3KooWnotapeerid"]
min_group = 0
[probe]
max_miners = 0
[score]
target_mbps = 5.0
min_mbps = 10.0
alpha = 1.5
[weights]
http_url = "ftp://x"
sinks = "x"
[verify]
mode = "lane"
every_epochs = 0
windows = 5
power_z = -1.0
device = "tpu"
`
	path := filepath.Join(t.TempDir(), "validator.toml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadValidator(path)
	if err == nil {
		t.Fatal("bad validator config accepted")
	}
	for _, key := range []string{"run_id", "swarm.validators", "swarm.min_group", "probe.max_miners", "score.target_mbps", "score.alpha", "weights.http_url", "weights.sinks", "verify.mode", "verify.every_epochs", "verify.windows", "verify.power_z", "verify.device"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error lacks %s:\n%v", key, err)
		}
	}
	m := DefaultMiner()
	m.Swarm.Validators = []string{"nope"}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "swarm.validators") {
		t.Fatalf("miner with a bad validator id: %v", err)
	}
	m.Swarm.Validators = []string{"12D3KooWLRPJAA5o6Z6HgxPFA9BVySeWPBZDXXTnrBnvjDbbbBWh"}
	if err := m.Validate(); err != nil {
		t.Fatalf("miner with a valid validator id: %v", err)
	}
}

// TestMarshalValidatorLoadsBack: a validator config written by
// MarshalValidator (what dtrain swarm --validators gives its validators)
// loads back to itself.
func TestMarshalValidatorLoadsBack(t *testing.T) {
	v := DefaultValidator()
	v.RunID, v.OutDir = "swarm-2", "v1"
	v.Net.Listen, v.Net.Bootstrap = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, []string{}
	v.Swarm.Validators = []string{"12D3KooWLRPJAA5o6Z6HgxPFA9BVySeWPBZDXXTnrBnvjDbbbBWh"}
	v.Probe.EveryEpochs, v.Weights.JSONL = 2, "w.jsonl"
	text, err := MarshalValidator(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "validator.toml")
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadValidator(path)
	if err != nil {
		t.Fatalf("LoadValidator(MarshalValidator(v)): %v\n%s", err, text)
	}
	if !reflect.DeepEqual(got, v) {
		t.Errorf("loads back as\n%+v\nwant\n%+v", got, v)
	}
}
