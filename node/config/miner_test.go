package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/dtrain-dev/dtrain/node/roster"
	"github.com/libp2p/go-libp2p/core/peer"
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
		"listen = [\"/ip4/0.0.0.0/udp/4002/quic-v1\", \"/ip4/0.0.0.0/tcp/4002\"]"} {
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

// TestMinerRefusesTrainerKeys: the train keys a miner does not read are
// errors that name the key, its line and what to do instead, also when
// their value has the wrong type; a train config accepts them all.
func TestMinerRefusesTrainerKeys(t *testing.T) {
	doc := `run_id = "ok"
[train]
max_steps = 100
checkpoint_every = 10
keep_checkpoints = 3
eval_every = 5
log_every = "often"
checkpoint_evry = 1
[swarm]
eval_every = 2
`
	path := filepath.Join(t.TempDir(), "miner.toml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadMiner(path)
	if err == nil {
		t.Fatal("a miner config with trainer-only keys loaded")
	}
	want := []string{
		"miner.toml:4: train.checkpoint_every: not read by a miner: it checkpoints the state of every epoch it finishes (out_dir/miner_state.bin); delete the key",
		"miner.toml:5: train.keep_checkpoints: not read by a miner: it keeps one checkpoint",
		"miner.toml:6: train.eval_every: not read by a miner: it evaluates held-out loss every swarm.eval_every epochs; set swarm.eval_every instead",
		"miner.toml:7: train.log_every: not read by a miner: it logs one line per epoch; delete the key",
		// No suggestion of a key the miner refuses.
		"miner.toml:8: train.checkpoint_evry: unknown key\n",
	}
	msg := err.Error() + "\n"
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, "want an integer") {
		t.Errorf("a refused key's type is checked:\n%s", msg)
	}
	train := strings.Replace(strings.Replace(doc, `"often"`, "1", 1), "checkpoint_evry = 1\n[swarm]\neval_every = 2\n", "", 1)
	tpath := filepath.Join(t.TempDir(), "train.toml")
	if err := os.WriteFile(tpath, []byte(train), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := LoadTrain(tpath); err != nil || c.Loop.CheckpointEvery != 10 || c.Loop.EvalEvery != 5 {
		t.Errorf("train config with the same keys: %+v, %v", c.Loop, err)
	}
}

// TestMinerTemplateKeys: the miner template spells out every key a miner
// reads and none that it refuses, with the miner's meaning where it
// differs from the trainer's.
func TestMinerTemplateKeys(t *testing.T) {
	text, err := Template("miner")
	if err != nil {
		t.Fatal(err)
	}
	md, err := toml.Decode(string(text), &map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	var defined []string
	for _, k := range md.Keys() {
		defined = append(defined, k.String())
	}
	known := minerSchema.known()
	slices.Sort(defined)
	slices.Sort(known)
	if !slices.Equal(defined, known) {
		t.Errorf("miner template defines %q\nwant %q", defined, known)
	}
	for key := range minerSchema.refused {
		if slices.Contains(defined, key) {
			t.Errorf("miner template holds %s, which a miner refuses", key)
		}
	}
	for _, want := range []string{
		"# stop after the epoch in which this much wall time has passed",
		"# where the miner's typed events go besides the log",
	} {
		if !strings.Contains(strings.ToLower(string(text)), strings.ToLower(want)) {
			t.Errorf("miner template lacks %q", want)
		}
	}
}

// TestMarshalMinerLoadsBack: a miner config written by MarshalMiner (what
// dtrain swarm gives its miners) loads back to itself.
func TestMarshalMinerLoadsBack(t *testing.T) {
	m := DefaultMiner()
	m.RunID, m.Seed, m.Threads = "swarm-2", 9, 1
	m.Loop.MaxSteps, m.Loop.MaxMinutes = 100_000, 2.5
	m.Metrics.Addr = "127.0.0.1:0"
	m.Net.Listen, m.Net.Bootstrap = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, nil
	m.Swarm.Mode, m.Swarm.MatchSeconds = "gradients", 5
	text, err := MarshalMiner(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "miner.toml")
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadMiner(path)
	if err != nil {
		t.Fatalf("LoadMiner(MarshalMiner(m)): %v\n%s", err, text)
	}
	m.Net.Bootstrap = []string{} // an empty array reads back as one
	if !reflect.DeepEqual(got, m) {
		t.Errorf("loads back as\n%+v\nwant\n%+v", got, m)
	}
}

// An unknown aggregation rule is refused with the rules there are, by the
// miner's config and the validator's alike.
func TestAggregationRule(t *testing.T) {
	m := DefaultMiner()
	if m.Swarm.Aggregation != "mean" {
		t.Fatalf("default aggregation %q, want mean", m.Swarm.Aggregation)
	}
	m.Swarm.Aggregation = "median"
	want := "swarm.aggregation: must be one of mean, trimmed_mean, centered_clip"
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("miner with aggregation median: %v", err)
	}
	v := DefaultValidator()
	v.Swarm.Aggregation = "median"
	if err := v.Validate(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("validator with aggregation median: %v", err)
	}
	m.Swarm.Aggregation = "centered_clip"
	if err := m.Validate(); err != nil {
		t.Error(err)
	}
	if got := ValidatorSwarmOf(m.Swarm).Aggregation; got != "centered_clip" {
		t.Errorf("validator takes aggregation %q from the miners' centered_clip", got)
	}
}

// swarm.members makes a run allowlisted: its ids are checked, and the
// admission rule takes members and validators only; an empty list is an
// open run (no rule).
func TestMembersAdmission(t *testing.T) {
	const a, v = "12D3KooWAbV1V6a9yGG9hAuhBXDAJk1jPnDR8CEdNq3ZrqQpT1Ru", "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
	m := DefaultMiner()
	m.Swarm.Members = []string{a, "not-a-peer"}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "swarm.members: must list peer ids") {
		t.Errorf("members with a bad id: %v", err)
	}
	if Admission(nil, []string{v}, nil) != nil {
		t.Error("an open run has an admission rule")
	}
	admit := Admission([]string{a}, []string{v}, nil)
	ida, _ := peer.Decode(a)
	idv, _ := peer.Decode(v)
	stranger, _ := peer.Decode("12D3KooWKnPMgn6CpwiK92tWEv2GmjFVtiuzijRh1nNuu3DXLt2Z")
	if !admit(ida) || !admit(idv) || admit(stranger) {
		t.Errorf("admission: member %v, validator %v, stranger %v; want true, true, false", admit(ida), admit(idv), admit(stranger))
	}
}

// swarm.owner makes a run admit by its owner's roster: the owner must be a
// peer id, it needs a roster file, and an allowlist beside it is refused;
// the admission rule takes the validators and what the book admits.
func TestOwnerAdmission(t *testing.T) {
	const o, v = "12D3KooWAbV1V6a9yGG9hAuhBXDAJk1jPnDR8CEdNq3ZrqQpT1Ru", "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
	m := DefaultMiner()
	m.Swarm.Owner = "not-a-peer"
	m.Swarm.RosterFile = ""
	m.Swarm.Members = []string{v}
	err := m.Validate()
	for _, want := range []string{"swarm.owner: must be a peer id", "swarm.roster_file: must name a file", "swarm.members: a run admits by its owner's roster"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad roster keys: %v, want %q", err, want)
		}
	}
	m = DefaultMiner()
	m.Swarm.Owner = o
	if err := m.Validate(); err != nil {
		t.Fatalf("an owner with the default roster file: %v", err)
	}
	vc := DefaultValidator()
	vc.Swarm = ValidatorSwarmOf(m.Swarm)
	if vc.Swarm.Owner != o || vc.Swarm.RosterFile != "roster.bin" {
		t.Errorf("validator takes owner %q and roster file %q from the miners'", vc.Swarm.Owner, vc.Swarm.RosterFile)
	}
	owner, _ := peer.Decode(o)
	book, err := roster.NewBook(roster.BookConfig{Owner: owner, Run: "r"})
	if err != nil {
		t.Fatal(err)
	}
	admit := Admission(nil, []string{v}, book)
	idv, _ := peer.Decode(v)
	stranger, _ := peer.Decode("12D3KooWKnPMgn6CpwiK92tWEv2GmjFVtiuzijRh1nNuu3DXLt2Z")
	if admit == nil || !admit(owner) || !admit(idv) || admit(stranger) {
		t.Error("a roster run admits its owner and validators, not a stranger")
	}
}

func TestMaxEpochSamples(t *testing.T) {
	m := DefaultMiner()
	want := int64(m.Swarm.InnerSteps) * int64(m.Loop.BatchTokens/m.Data.SeqLen)
	if got := m.MaxEpochSamples(); got != want || got <= 0 {
		t.Errorf("diloco: %d samples an epoch, want %d (inner steps × batch sequences)", got, want)
	}
	m.Swarm.Mode, m.Swarm.TargetBatchSize = "gradients", 64
	if got := m.MaxEpochSamples(); got != 64+int64(m.Loop.MicroBatch) {
		t.Errorf("gradients: %d, want the target batch and one micro-batch", got)
	}
}
