package config

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestTemplateRoundTrip is the promise of `dtrain config init`: the file it
// writes loads back to exactly the defaults.
func TestTemplateRoundTrip(t *testing.T) {
	tmpl, err := Template("train")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "train.toml")
	if err := os.WriteFile(path, tmpl, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadTrain(path)
	if err != nil {
		t.Fatalf("LoadTrain(template): %v\n%s", err, tmpl)
	}
	if !reflect.DeepEqual(got, DefaultTrain()) {
		t.Errorf("template loads as\n%+v\nwant DefaultTrain()\n%+v", got, DefaultTrain())
	}
}

// TestTemplateSpellsEveryKey requires every key to be written out (not
// left to its default), each under its doc comment.
func TestTemplateSpellsEveryKey(t *testing.T) {
	tmpl, err := Template("train")
	if err != nil {
		t.Fatal(err)
	}
	md, err := toml.Decode(string(tmpl), &map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	var defined []string
	for _, k := range md.Keys() {
		defined = append(defined, k.String())
	}
	known := knownKeys("", reflect.TypeFor[Train]())
	slices.Sort(defined)
	slices.Sort(known)
	if !slices.Equal(defined, known) {
		t.Errorf("template defines %q\nwant %q", defined, known)
	}
	text := string(tmpl)
	for _, want := range []string{
		"dtrain train --config train.toml",
		"# AdamW denominator epsilon\neps = 1e-8\n",
		"# peak learning rate, reached after warmup_steps\nlr = 0.002\n",
		"# 50257 for GPT-2's tokenizer\nvocab_size = 50257\n",
		"\n[metrics]\n",
		"run_id = \"local\"\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("template lacks %q", want)
		}
	}
	for i, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") && len(line) > 78 {
			t.Errorf("template line %d is %d columns: %q", i+1, len(line), line)
		}
	}
}

// TestEveryFieldIsDocumented walks the config structs: every key needs a
// doc tag, and every table a section comment.
func TestEveryFieldIsDocumented(t *testing.T) {
	docs := sectionDocs
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for _, f := range tomlFields(typ) {
			key := joinKey(prefix, f.name)
			if f.typ.Kind() == reflect.Struct {
				if docs[key] == "" {
					t.Errorf("table [%s] has no entry in sectionDocs", key)
				}
				walk(key, f.typ)
				continue
			}
			if strings.TrimSpace(f.doc) == "" {
				t.Errorf("%s has no doc tag", key)
			}
		}
	}
	walk("", reflect.TypeFor[Train]())
	walk("", reflect.TypeFor[Miner]())
	docs = validatorSectionDocs
	walk("", reflect.TypeFor[Validator]())
}

func TestTemplateUnknownRole(t *testing.T) {
	_, err := Template("auditor")
	if err == nil || !strings.Contains(err.Error(), `"auditor"`) || !strings.Contains(err.Error(), "known roles: train, miner, validator") {
		t.Fatalf("Template(auditor) = %v, want an error naming the role and listing train, miner, validator", err)
	}
	if !slices.Equal(Roles(), []string{"train", "miner", "validator"}) {
		t.Errorf("Roles() = %q", Roles())
	}
}

// decodeValue parses "v = lit" and returns v.
func decodeValue(t *testing.T, lit string) any {
	t.Helper()
	var m map[string]any
	if _, err := toml.Decode("v = "+lit, &m); err != nil {
		t.Fatalf("TOML rejects %s: %v", lit, err)
	}
	return m["v"]
}

func TestTOMLFloat(t *testing.T) {
	spelled := map[float64]string{
		1e-3: "0.001", 1e-4: "0.0001", 1e-8: "1e-8", 1: "1.0", 0: "0.0", 0.95: "0.95",
		-2.5: "-2.5", 1e21: "1e21", 1.5e300: "1.5e300", 123456789: "123456789.0",
		math.Inf(1): "inf", math.Inf(-1): "-inf",
	}
	for f, want := range spelled {
		if got := tomlFloat(f); got != want {
			t.Errorf("tomlFloat(%g) = %q, want %q", f, got, want)
		}
	}
	values := []float64{math.Copysign(0, -1), math.SmallestNonzeroFloat64, math.MaxFloat64, 0.1, 1.0 / 3, 1e20, 1e-5}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		values = append(values, math.Float64frombits(r.Uint64()))
	}
	for _, f := range values {
		lit := tomlFloat(f)
		got, ok := decodeValue(t, lit).(float64)
		if !ok {
			t.Fatalf("tomlFloat(%g) = %s is not a TOML float", f, lit)
		}
		if math.IsNaN(f) {
			if !math.IsNaN(got) {
				t.Errorf("%s parsed as %g, want NaN", lit, got)
			}
			continue
		}
		if math.Float64bits(got) != math.Float64bits(f) {
			t.Errorf("tomlFloat(%g) = %s parses as %g", f, lit, got)
		}
	}
}

func TestTOMLString(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and backslash \`, "tab\tnewline\ncr\r", "\x00\x01\x1f\x7f\b\f",
		"ünïcödé ✓ 🙂", "$XDG_CACHE_HOME/dtrain", "bad utf8 \xff\xfe end", "\uFFFD kept", `C:\runs\x`,
	} {
		lit := tomlString(s)
		got, ok := decodeValue(t, lit).(string)
		if want := strings.ToValidUTF8(s, "\uFFFD"); !ok || got != want {
			t.Errorf("tomlString(%q) = %s parses as %q, want %q", s, lit, got, want)
		}
	}
}
