package config

import (
	"bytes"
	"slices"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestDiff: every key whose value changed is named with both values, in
// file order, and a secret-looking key's values are hidden.
func TestDiff(t *testing.T) {
	old, cur := DefaultMiner(), DefaultMiner()
	cur.Optim.LR, cur.Data.Train, cur.Swarm.Validators = 1e-3, "data/web", []string{peerA}
	cur.Net.KeyFile = "other.key"
	old.Net.Bootstrap, cur.Net.Bootstrap = nil, []string{} // TOML cannot tell these apart
	var got []string
	for _, c := range Diff(old, cur) {
		got = append(got, c.String())
	}
	want := []string{
		`data.train: "" → "data/web"`,
		"optim.lr: 0.003 → 0.001",
		"net.key_file: (hidden) → (hidden)",
		`swarm.validators: [] → ["` + peerA + `"]`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Diff = %q\nwant %q", got, want)
	}
	if d := Diff(DefaultValidator(), DefaultValidator()); len(d) != 0 {
		t.Errorf("Diff of equal configs = %v", d)
	}
}

// TestDiffTrainTOML: a resumed run's warning names what changed between
// the checkpoint's copy of the config and the running one, as the trainer
// writes them; a key the old copy lacks counts as its default.
func TestDiffTrainTOML(t *testing.T) {
	encode := func(c Train) []byte {
		var b bytes.Buffer
		if err := toml.NewEncoder(&b).Encode(c); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	old, cur := DefaultTrain(), DefaultTrain()
	cur.Loop.MaxSteps, cur.Model.Dropout = 500, 0.1
	changes, err := DiffTrainTOML(append([]byte("# an older file\n"), encode(old)...), encode(cur))
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{{Key: "model.dropout", Old: "0.0", New: "0.1"}, {Key: "train.max_steps", Old: "250", New: "500"}}
	if !slices.Equal(changes, want) {
		t.Errorf("DiffTrainTOML = %v, want %v", changes, want)
	}
	if changes, err := DiffTrainTOML([]byte("seed = 1337\n"), encode(DefaultTrain())); err != nil || len(changes) != 0 {
		t.Errorf("DiffTrainTOML(a partial file of defaults) = %v, %v; want no change", changes, err)
	}
	if _, err := DiffTrainTOML([]byte("seed = ["), encode(cur)); err == nil {
		t.Error("a broken copy diffed without error")
	}
}
