package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// writeConfig writes doc to a temp train.toml and returns its path.
func writeConfig(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "train.toml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadTrainGoodFile(t *testing.T) {
	path := writeConfig(t, `
run_id = "exp-7"   # a comment
device = "cuda:1"

[model]
n_layer = 2
n_head = 2
n_embd = 64

[optim]
lr = 3          # an integer is fine for a float
"min_lr" = 3e-5

[train]
max_steps = 200
batch_tokens = 4096
metrics.addr = "127.0.0.1:9100"
`)
	// metrics.addr above sits inside [train]: that is train.metrics.addr.
	if _, err := LoadTrain(path); err == nil || !strings.Contains(err.Error(), "train.metrics: unknown key (did you mean metrics?)") {
		t.Fatalf("dotted key inside a table: err = %v", err)
	}

	path = writeConfig(t, `
run_id = "exp-7"
device = "cuda:1"
optim.lr = 3          # a dotted key at the top level; an integer is fine for a float

[model]
n_layer = 2
n_head = 2
n_embd = 64

[optim]
"min_lr" = 3e-5

[train]
max_steps = 200
batch_tokens = 4096

[metrics]
addr = "127.0.0.1:9100"
`)
	got, err := LoadTrain(path)
	if err != nil {
		t.Fatalf("LoadTrain: %v", err)
	}
	want := DefaultTrain()
	want.RunID, want.Device = "exp-7", "cuda:1"
	want.Model.NLayer, want.Model.NHead, want.Model.NEmbd = 2, 2, 64
	want.Optim.LR, want.Optim.MinLR = 3, 3e-5
	want.Loop.MaxSteps, want.Loop.BatchTokens = 200, 4096
	want.Metrics.Addr = "127.0.0.1:9100"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadTrain =\n%+v\nwant\n%+v", got, want)
	}
	if got.AccumSteps() != 2 {
		t.Errorf("AccumSteps = %d, want 2", got.AccumSteps())
	}
}

func TestLoadTrainEmptyFileIsDefault(t *testing.T) {
	got, err := LoadTrain(writeConfig(t, "# nothing\n"))
	if err != nil || !reflect.DeepEqual(got, DefaultTrain()) {
		t.Fatalf("LoadTrain(empty) = %+v, %v; want the defaults", got, err)
	}
}

// TestLoadTrainErrors requires exactly the listed messages, in order, each
// prefixed with "path:".
func TestLoadTrainErrors(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want []string
	}{
		{"unknown key, suggestion", "[optim]\nlrr = 0.01\n",
			[]string{"2: optim.lrr: unknown key (did you mean optim.lr?)"}},
		{"unknown key, no suggestion", "[optim]\nfoo = 1\n",
			[]string{"2: optim.foo: unknown key"}},
		{"unknown key in the wrong table", "lr = 0.01\n",
			[]string{"1: lr: unknown key (did you mean optim.lr?)"}},
		{"unknown table reported once", "[optimizer]\nlr = 1\nbeta1 = 0.9\n",
			[]string{"1: optimizer: unknown key"}},
		{"misspelled table", "[optm]\nlr = 1\n",
			[]string{"1: optm: unknown key (did you mean optim?)"}},
		{"string for float", "run_id = \"x\"\n\n[optim]\nlr = \"fast\"\n",
			[]string{`4: optim.lr: want a float, got string "fast"`}},
		{"float for int", "[train]\nmax_steps = 1.5\n",
			[]string{"2: train.max_steps: want an integer, got float 1.5"}},
		{"negative seed", "seed = -1\n",
			[]string{"1: seed: want a non-negative integer, got integer -1"}},
		{"bool for string", "device = true\n",
			[]string{"1: device: want a string, got boolean true"}},
		{"array for int", "threads = [1, 2]\n",
			[]string{"1: threads: want an integer, got an array"}},
		{"scalar for table", "model = 3\n",
			[]string{"1: model: want a table, got integer 3"}},
		{"inline table: line of the table", "run_id = \"a\"\noptim = { lr = \"x\" }\n",
			[]string{`2: optim.lr: want a float, got string "x"`}},
		{"every problem at once, in file order", "[train]\nlog_every = \"often\"\nlogevery = 1\n[model]\nn_layers = 2\n",
			[]string{`2: train.log_every: want an integer, got string "often"`,
				"3: train.logevery: unknown key (did you mean train.log_every?)",
				"5: model.n_layers: unknown key (did you mean model.n_layer?)"}},
		{"unknown keys and invalid values together", "[optim]\nlrr = 1\nlr = 0\nmin_lr = 0\n",
			[]string{"2: optim.lrr: unknown key (did you mean optim.lr?)", "3: optim.lr: must be > 0 (got 0.0)"}},
		{"a wrong type holds back validation", "[optim]\nlr = \"x\"\n[train]\nmax_steps = 0\n",
			[]string{`2: optim.lr: want a float, got string "x"`}},
		{"invalid value has its line", "\n[optim]\nlr = 0\nmin_lr = 0\n",
			[]string{"3: optim.lr: must be > 0 (got 0.0)"}},
		{"nan", "[optim]\nbeta1 = nan\n",
			[]string{"2: optim.beta1: must be a finite number (got nan)"}},
		{"invalid default has no line", "[data]\nseq_len = 100\n",
			[]string{" train.batch_tokens: must be a multiple of micro_batch*seq_len = 1600, e.g. 3200 or 4800 (got 4096)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.doc)
			_, err := LoadTrain(path)
			if err == nil {
				t.Fatalf("LoadTrain succeeded, want %q", tc.want)
			}
			got := strings.Split(err.Error(), "\n")
			want := make([]string, len(tc.want))
			for i, w := range tc.want {
				want[i] = path + ":" + w
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("LoadTrain error:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.File != path {
				t.Errorf("errors.As(*FieldError) = %+v, want one naming %s", fe, path)
			}
		})
	}
}

func TestLoadTrainSyntaxError(t *testing.T) {
	path := writeConfig(t, "run_id = \"a\"\n[optim\nlr = 1\n")
	_, err := LoadTrain(path)
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a toml.ParseError inside", err)
	}
	// The unexpected newline ends line 2, after "[optim".
	if want := path + ":2:7: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q, want it to start with %q", err, want)
	}
}

func TestLoadTrainMissingFile(t *testing.T) {
	_, err := LoadTrain(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nope.toml") {
		t.Fatalf("err = %v, want a not-exist error naming the file", err)
	}
}

func TestMissedUnknown(t *testing.T) {
	undecoded := []toml.Key{{"foo"}, {"foo", "bar"}, {"optim", "xyz"}, {"optim", "lrr"}}
	reported := []*FieldError{{Key: "foo"}, {Key: "optim.lrr"}}
	got := missedUnknown(undecoded, reported, trainSchema)
	if len(got) != 1 || got[0].Key != "optim.xyz" || got[0].Reason != "unknown key" {
		t.Errorf("missedUnknown = %v, want only optim.xyz", got)
	}
}

func TestKeyLines(t *testing.T) {
	doc := `# comment = 1
a = 1
b.c = "x = 2"
"quoted key" = 3
'lit.eral' = 4
s = """
fake = 5
"""
[t1]
x = 1
  [ t1 . "sub" ]
  y = [
    1, 2,
  ]
[[arr]]
z = 1
t2 . w = '''one line'''
after = 1
`
	want := map[string]int{
		"a": 2, "b": 3, "b.c": 3, "quoted key": 4, "lit.eral": 5, "s": 6,
		"t1": 9, "t1.x": 10, "t1.sub": 11, "t1.sub.y": 12,
		"arr": 15, "arr.z": 16, "arr.t2": 17, "arr.t2.w": 17, "arr.after": 18,
	}
	if got := keyLines(doc); !reflect.DeepEqual(got, want) {
		t.Errorf("keyLines =\n%v\nwant\n%v", got, want)
	}
}

func TestSuggest(t *testing.T) {
	known := knownKeys("", reflect.TypeFor[Train]())
	cases := map[string]string{
		"optim.lrr":         "optim.lr",
		"optim.Lr":          "optim.lr",
		"runid":             "run_id",
		"train.seq_len":     "data.seq_len",
		"model.n_layers":    "model.n_layer",
		"optim.completely":  "",
		"metrics.x":         "", // not the table it is in
		"dat":               "data",
		"data.validation":   "",
		"metrics.jsnol":     "metrics.jsonl",
		"train.batch_token": "train.batch_tokens",
	}
	for key, want := range cases {
		if got := suggest(key, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"lr", "lr", 0}, {"lrr", "lr", 1}, {"kitten", "sitting", 3},
		{"flaw", "lawn", 2}, {"a", strings.Repeat("a", 100), 5}, {"é", "e", 1},
	}
	for _, tc := range cases {
		if got := editDistance(tc.a, tc.b, 5); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// FuzzDecodeTrain requires that no input panics, and that whatever loads
// is valid.
func FuzzDecodeTrain(f *testing.F) {
	// Short seeds: the fuzzer's minimizer crawls on the whole template.
	f.Add("run_id = \"a\"\n[model]\nn_layer = 2\n[optim]\nlr = 0.001\n[train]\nbatch_tokens = 4096\n")
	f.Add("[optim]\nlr = \"fast\"\nlrr = 1\n")
	f.Add("model = 3\noptim = { lr = nan }\n[[arr]]\nx = 1\n")
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := decodeTrain("f.toml", doc)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("decodeTrain accepted an invalid config: %v", verr)
			}
		}
	})
}
