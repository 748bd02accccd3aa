package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func envNames[T Role]() map[string]string {
	names := map[string]string{}
	for _, l := range schemaOf[T]().leaves() {
		names[EnvName(l.key)] = l.key
	}
	return names
}

// TestEnvNames: a variable's name follows from its key, and no two keys of
// a role share one (a future top-level "train_max_steps" would take
// train.max_steps's).
func TestEnvNames(t *testing.T) {
	for key, want := range map[string]string{
		"swarm.mode": "DTRAIN_SWARM_MODE", "run_id": "DTRAIN_RUN_ID", "model.n_layer": "DTRAIN_MODEL_N_LAYER",
		"net.bootstrap": "DTRAIN_NET_BOOTSTRAP", "train.max_steps": "DTRAIN_TRAIN_MAX_STEPS",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %s, want %s", key, got, want)
		}
	}
	for role, leaves := range map[string][]leaf{"train": trainSchema.leaves(), "miner": minerSchema.leaves(), "validator": validatorSchema.leaves()} {
		seen := map[string]string{}
		for _, l := range leaves {
			n := EnvName(l.key)
			if other, dup := seen[n]; dup {
				t.Errorf("%s: %s and %s both derive %s", role, other, l.key, n)
			}
			seen[n] = l.key
		}
	}
}

// TestEnvNamesFreeOfOtherVariables: no key derives the name of a variable
// that dtrain reads for something else. The variables are found in the
// repository's code, so a new one is checked too; the ones a key shares
// on purpose mean that key.
func TestEnvNamesFreeOfOtherVariables(t *testing.T) {
	shared := map[string]string{
		"DTRAIN_DEVICE":    "device",    // --device of train, miner, eval, generate and bench
		"DTRAIN_PRECISION": "precision", // --precision of train, miner and bench
	}
	for name, key := range globalEnv {
		shared[name] = key
	}
	used := map[string]bool{"DTRAIN_LOG_LEVEL": true, "DTRAIN_LOG_FORMAT": true, "DTRAIN_THREADS": true}
	pattern := regexp.MustCompile(`DTRAIN_[A-Z0-9_]+`)
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "config" && filepath.Base(filepath.Dir(path)) == "node") {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") || d.Name() == "Dockerfile") {
			return nil
		}
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range pattern.FindAllString(string(text), -1) {
			used[n] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !used["DTRAIN_GOROOT"] {
		t.Fatalf("found %v in the code, want DTRAIN_GOROOT among them", used)
	}
	for role, names := range map[string]map[string]string{"train": envNames[Train](), "miner": envNames[Miner](), "validator": envNames[Validator]()} {
		for n, key := range names {
			if used[n] && shared[n] != key {
				t.Errorf("%s key %s derives %s, which dtrain reads for something else", role, key, n)
			}
		}
	}
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// TestApplyEnv: each type of key takes its value from its variable; a
// variable of a key the role refuses or does not have, a global flag's
// and an empty one change nothing.
func TestApplyEnv(t *testing.T) {
	boot := []string{"/ip4/10.0.0.1/udp/4002/quic-v1/p2p/" + peerA, "/ip4/10.0.0.2/tcp/4002/p2p/" + peerB}
	m := DefaultMiner()
	set, err := ApplyEnv(&m, lookupIn(map[string]string{
		"DTRAIN_SWARM_MODE":       "gradients",
		"DTRAIN_NET_BOOTSTRAP":    boot[0] + ", " + boot[1],
		"DTRAIN_TRAIN_MAX_STEPS":  "100",
		"DTRAIN_RUN_ID":           "run-7",
		"DTRAIN_SEED":             "18446744073709551615",
		"DTRAIN_MODEL_N_LAYER":    "3",
		"DTRAIN_SWARM_OUTER_LR":   "0.5",
		"DTRAIN_NET_NAT":          "true",
		"DTRAIN_THREADS":          "3",
		"DTRAIN_TRAIN_LOG_EVERY":  "5",
		"DTRAIN_VERIFY_MODE":      "norm",
		"DTRAIN_HUB_REPO":         "",
		"DTRAIN_SWARM_VALIDATORS": "",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultMiner()
	want.Swarm.Mode, want.Net.Bootstrap, want.Loop.MaxSteps, want.RunID = "gradients", boot, 100, "run-7"
	want.Seed, want.Model.NLayer, want.Swarm.OuterLR, want.Net.NAT = 1<<64-1, 3, 0.5, true
	if !reflect.DeepEqual(m, want) {
		t.Errorf("after ApplyEnv:\n%+v\nwant\n%+v", m, want)
	}
	var keys []string
	for _, s := range set {
		if s.Var != EnvName(s.Key) {
			t.Errorf("setting %+v: variable and key disagree", s)
		}
		keys = append(keys, s.Key)
	}
	if w := []string{"run_id", "seed", "model.n_layer", "train.max_steps", "net.bootstrap", "net.nat", "swarm.mode", "swarm.outer_lr"}; !slices.Equal(keys, w) {
		t.Errorf("set %v, want %v in file order", keys, w)
	}
}

// TestApplyEnvErrors: a value that does not parse is reported with its
// variable, and the config is left as it was.
func TestApplyEnvErrors(t *testing.T) {
	m := DefaultMiner()
	_, err := ApplyEnv(&m, lookupIn(map[string]string{
		"DTRAIN_TRAIN_MAX_STEPS": "1e3", "DTRAIN_NET_NAT": "maybe", "DTRAIN_SEED": "-1",
		"DTRAIN_SWARM_OUTER_LR": "fast", "DTRAIN_SWARM_MODE": "gradients",
	}))
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, want := range []string{
		`$DTRAIN_TRAIN_MAX_STEPS: train.max_steps: want an integer (got "1e3")`,
		`$DTRAIN_NET_NAT: net.nat: want true or false (got "maybe")`,
		`$DTRAIN_SEED: seed: want a non-negative integer (got "-1")`,
		`$DTRAIN_SWARM_OUTER_LR: swarm.outer_lr: want a float (got "fast")`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !reflect.DeepEqual(m, DefaultMiner()) {
		t.Error("a failed ApplyEnv changed the config")
	}
}

// TestApplySet: --set assignments override keys by their dotted names, a
// later one winning; a wrong key gets a suggestion and a refused one the
// reason.
func TestApplySet(t *testing.T) {
	m := DefaultMiner()
	err := ApplySet(&m, []string{"swarm.mode=gradients", "train.max_steps=100", "net.listen=/ip4/0.0.0.0/tcp/1, /ip4/0.0.0.0/udp/1/quic-v1",
		"swarm.members=", "train.max_steps=200", "hub.repo=org/name=x"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Swarm.Mode != "gradients" || m.Loop.MaxSteps != 200 || !slices.Equal(m.Net.Listen, []string{"/ip4/0.0.0.0/tcp/1", "/ip4/0.0.0.0/udp/1/quic-v1"}) ||
		m.Swarm.Members == nil || len(m.Swarm.Members) != 0 || m.Hub.Repo != "org/name=x" {
		t.Errorf("after ApplySet: mode %q max_steps %d listen %q members %#v repo %q", m.Swarm.Mode, m.Loop.MaxSteps, m.Net.Listen, m.Swarm.Members, m.Hub.Repo)
	}
	for _, tc := range []struct{ set, want string }{
		{"swarm.mdoe=diloco", "--set: swarm.mdoe: unknown key (did you mean swarm.mode?)"},
		{"max_steps=3", "--set: max_steps: unknown key (did you mean train.max_steps?)"},
		{"swarm=1", "--set: swarm: is a table: set one of its keys, e.g. swarm.mode=…"},
		{"train.log_every=3", "--set: train.log_every: not read by a miner: it logs one line per epoch"},
		{"swarm.mode", "--set: swarm.mode: want key=value, e.g. swarm.mode=gradients"},
		{"train.max_steps=ten", `--set: train.max_steps: want an integer (got "ten")`},
	} {
		m := DefaultMiner()
		err := ApplySet(&m, []string{"swarm.inner_steps=3", tc.set})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: err %v, want %q", tc.set, err, tc.want)
		}
		if m.Swarm.InnerSteps != DefaultMiner().Swarm.InnerSteps {
			t.Errorf("--set %s: a failed ApplySet changed the config", tc.set)
		}
	}
	v := DefaultValidator()
	if err := ApplySet(&v, []string{"verify.mode=norm", "probe.seconds=2.5"}); err != nil || v.Verify.Mode != "norm" || v.Probe.Seconds != 2.5 {
		t.Errorf("validator --set: err %v, verify.mode %q probe.seconds %g", err, v.Verify.Mode, v.Probe.Seconds)
	}
	if err := ApplySet(&v, []string{"swarm.mode=diloco"}); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Errorf("validator --set swarm.mode: err %v, want unknown key", err)
	}
}

// TestRolesFor: a file's keys say which roles it can be for.
func TestRolesFor(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, role := range Roles() { // a train file sets keys a miner refuses
		text, err := Template(role)
		if err != nil {
			t.Fatal(err)
		}
		got, err := RolesFor(write(role+".toml", string(text)))
		want := map[string][]string{"train": {"train"}, "miner": {"miner"}, "validator": {"validator"}}[role]
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("RolesFor(%s template) = %v, %v; want %v", role, got, err, want)
		}
	}
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"", []string{"train", "miner", "validator"}},
		{"[swarm]\nmode = \"gradients\"\n", []string{"miner"}},
		{"[train]\nlog_every = 5\n", []string{"train"}}, // a miner refuses it
		{"[verify]\nmode = 3\n", []string{"validator"}}, // values are not checked
		{"[nothing]\n", nil},
	} {
		got, err := RolesFor(write("f.toml", tc.text))
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("RolesFor(%q) = %v, %v; want %v", tc.text, got, err, tc.want)
		}
	}
}
