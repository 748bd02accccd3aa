package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestMinerTemplateLoads: the miner template decodes to exactly the
// defaults, its train keys sit at the top level as in a train config, and
// the new tables are there.
func TestMinerTemplateLoads(t *testing.T) {
	text, err := Template("miner")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\n[swarm]\n", "\n[net]\n", "mode = \"diloco\"", "outer_lr = 0.7", "\n[model]\n", "run_id = \"swarm\"",
		"listen = [\"/ip4/0.0.0.0/udp/0/quic-v1\", \"/ip4/0.0.0.0/tcp/0\"]"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("miner template lacks %q", want)
		}
	}
	path := filepath.Join(t.TempDir(), "miner.toml")
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := LoadMiner(path)
	if err != nil {
		t.Fatalf("LoadMiner(template): %v", err)
	}
	if !reflect.DeepEqual(m, DefaultMiner()) {
		t.Fatalf("template decodes to %+v, want the defaults %+v", m, DefaultMiner())
	}
}

// TestMinerConfigErrors: wrong types, unknown keys and impossible values in
// the miner's own tables and in the train part are all reported, with lines.
func TestMinerConfigErrors(t *testing.T) {
	doc := `run_id = "ok"
[swarm]
mode = "sync"
outer_momentum = 1.5
min_group = 3
max_group = 2
compres = "int8"
role = "server"
[net]
listen = "0.0.0.0"
[optim]
lr = -1.0
`
	path := filepath.Join(t.TempDir(), "miner.toml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadMiner(path)
	if err == nil {
		t.Fatal("bad miner config accepted")
	}
	msg := err.Error()
	// A mistyped value stops validation, so the wrong type and the unknown
	// key come first; fix those and the values are checked.
	for _, want := range []string{"miner.toml:10: net.listen: want an array of strings", "miner.toml:7: swarm.compres: unknown key (did you mean swarm.compress?)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	doc = strings.Replace(strings.Replace(doc, `listen = "0.0.0.0"`, `listen = ["/ip4/0.0.0.0/tcp/0"]`, 1), "compres =", "compress =", 1)
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadMiner(path)
	if err == nil {
		t.Fatal("bad miner values accepted")
	}
	msg = err.Error()
	for _, want := range []string{"swarm.mode: must be diloco or gradients", "swarm.outer_momentum: must be in [0, 1)", "swarm.max_group: must be at least min_group (3)", "swarm.role: must be auto, full or client", "optim.lr"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

// TestGradientsTargetBatch: gradients mode needs a target batch of at least
// one sample; diloco does not look at it.
func TestGradientsTargetBatch(t *testing.T) {
	m := DefaultMiner()
	m.Swarm.Mode, m.Swarm.TargetBatchSize = "gradients", 0
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "swarm.target_batch_size") {
		t.Fatalf("gradients mode with target_batch_size 0: %v", err)
	}
	m.Swarm.Mode = "diloco"
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}
