package config

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// roles are the config files Template can write, one per dtrain command
// that reads one.
var roles = []string{"train", "miner", "validator"}

// Roles lists the roles Template knows.
func Roles() []string { return append([]string(nil), roles...) }

// sectionDocs describe the tables of the train config. The struct fields
// that hold the sections carry no doc tag, so the text lives here; a test
// requires an entry for every section.
var sectionDocs = map[string]string{
	"model":   "Which GPT-2 to train: a fresh one of the sizes below, or the weights of an HF checkpoint directory (init), whose config.json then wins over the sizes here.",
	"data":    "What to train and evaluate on.",
	"optim":   "AdamW with a cosine learning-rate schedule and linear warmup.",
	"train":   "The training loop: how big a step is, how long to train, when to evaluate and checkpoint.",
	"metrics": "Where training metrics go besides the log.",
	"wandb":   "Weights & Biases logging: one W&B run per dtrain run and role, a history row per step (train) or epoch (miner); on when $WANDB_API_KEY is set.",
	"net":     "The miner's network: where it listens, whom it asks first, its identity.",
	"swarm":   "How the miner trains with the swarm: sync mode, epochs, matchmaking and the all-reduce.",
	"hub":     "The run's public record on the HuggingFace Hub: where miners publish the model and load it from when no peer can serve it.",
}

const trainHeader = `dtrain training configuration.

Every key is listed with its default value; change what you need and delete
the rest (a missing key keeps its default). Train with

    dtrain train --config train.toml

and check a file without training with

    dtrain config check --config train.toml
`

const minerHeader = `dtrain miner configuration.

Every key is listed with its default value; change what you need and delete
the rest (a missing key keeps its default). Mine with

    dtrain miner --config miner.toml

and check a file without starting with

    dtrain config check --role miner --config miner.toml
`

// Template returns a commented TOML config for role holding every default,
// generated from the config structs' toml and doc tags and their defaults so
// that the file always matches the code.
func Template(role string) ([]byte, error) {
	var b bytes.Buffer
	var err error
	switch role {
	case "train":
		writeComment(&b, trainHeader)
		err = writeTable(&b, "", reflect.ValueOf(DefaultTrain()), trainSchema)
	case "miner":
		writeComment(&b, minerHeader)
		err = writeTable(&b, "", reflect.ValueOf(DefaultMiner()), minerSchema)
	case "validator":
		writeComment(&b, validatorHeader)
		err = writeTable(&b, "", reflect.ValueOf(DefaultValidator()), validatorSchema)
	default:
		return nil, fmt.Errorf("config template: unknown role %q (known roles: %s)", role, strings.Join(roles, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("config template for %s: %w", role, err)
	}
	return b.Bytes(), nil
}

// MarshalMiner writes m as a commented miner config file, every key a
// miner reads under its doc comment, as Template does the defaults;
// LoadMiner reads it back to m, less what m sets in keys a miner refuses.
func MarshalMiner(m Miner) ([]byte, error) {
	var b bytes.Buffer
	if err := writeTable(&b, "", reflect.ValueOf(m), minerSchema); err != nil {
		return nil, fmt.Errorf("miner config: %w", err)
	}
	return b.Bytes(), nil
}

// MarshalValidator writes v as a commented validator config file, as
// MarshalMiner does a miner's; LoadValidator reads it back to v.
func MarshalValidator(v Validator) ([]byte, error) {
	var b bytes.Buffer
	if err := writeTable(&b, "", reflect.ValueOf(v), validatorSchema); err != nil {
		return nil, fmt.Errorf("validator config: %w", err)
	}
	return b.Bytes(), nil
}

// writeTable writes v's plain keys that the role s reads, then each nested
// struct as a [table] (TOML requires a table's own keys before its
// sub-tables).
func writeTable(b *bytes.Buffer, prefix string, v reflect.Value, s schema) error {
	fields := tomlFields(v.Type())
	for _, f := range fields {
		key := joinKey(prefix, f.name)
		if _, refused := s.refused[key]; f.typ.Kind() == reflect.Struct || refused {
			continue
		}
		lit, err := valueLiteral(v.FieldByIndex(f.index))
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		b.WriteByte('\n')
		writeComment(b, s.doc(key, f.doc))
		fmt.Fprintf(b, "%s = %s\n", f.name, lit)
	}
	for _, f := range fields {
		if f.typ.Kind() != reflect.Struct {
			continue
		}
		key := joinKey(prefix, f.name)
		b.WriteString("\n\n")
		writeComment(b, s.doc(key, ""))
		fmt.Fprintf(b, "[%s]\n", key)
		if err := writeTable(b, key, v.FieldByIndex(f.index), s); err != nil {
			return err
		}
	}
	return nil
}

// writeComment writes text as "# " lines wrapped at 78 columns, keeping
// its own line breaks and indentation.
func writeComment(b *bytes.Buffer, text string) {
	if text == "" {
		return
	}
	for _, para := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		indent := para[:len(para)-len(strings.TrimLeft(para, " "))]
		line := ""
		for _, w := range strings.Fields(para) {
			if line != "" && len(indent)+len(line)+1+len(w) > 76 {
				fmt.Fprintf(b, "# %s%s\n", indent, line)
				line = ""
			}
			if line != "" {
				line += " "
			}
			line += w
		}
		if line == "" {
			b.WriteString("#\n")
			continue
		}
		fmt.Fprintf(b, "# %s%s\n", indent, line)
	}
}

// valueLiteral spells a config field's value as a TOML literal.
func valueLiteral(v reflect.Value) (string, error) {
	switch v.Kind() {
	case reflect.String:
		return tomlString(v.String()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return tomlFloat(v.Float()), nil
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), nil
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.String {
			items := make([]string, v.Len())
			for i := range items {
				items[i] = tomlString(v.Index(i).String())
			}
			return "[" + strings.Join(items, ", ") + "]", nil
		}
	}
	return "", fmt.Errorf("no TOML literal for a %s", v.Type())
}

// tomlString quotes s as a TOML basic string. Invalid UTF-8, which TOML
// cannot hold, becomes U+FFFD.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlFloat spells f as the shortest TOML float that parses back to f,
// in positional notation unless it is tiny or huge: 0.001, 1.0, 1e-8, inf.
func tomlFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	if abs := math.Abs(f); abs == 0 || abs >= 1e-4 && abs < 1e21 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0" // without a fraction TOML reads an integer
		}
		return s
	}
	mant, exp, _ := strings.Cut(strconv.FormatFloat(f, 'e', -1, 64), "e")
	sign := ""
	if exp[0] == '-' {
		sign = "-"
	}
	return mant + "e" + sign + strings.TrimLeft(exp, "+-0")
}

// schemaField is one TOML key of a config struct.
type schemaField struct {
	name  string // TOML key
	doc   string // doc tag
	index []int  // field index path in the struct (reflect.Value.FieldByIndex)
	typ   reflect.Type
}

// tomlFields lists t's exported fields that have a TOML key, in order. The
// fields of an embedded struct without a toml tag count as t's own, as
// BurntSushi/toml decodes them (a Miner config is a Train config and more).
func tomlFields(t reflect.Type) []schemaField {
	var fields []schemaField
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("toml")
		name, _, _ := strings.Cut(tag, ",")
		if sf.Anonymous && tag == "" && sf.Type.Kind() == reflect.Struct {
			for _, f := range tomlFields(sf.Type) {
				f.index = append([]int{i}, f.index...)
				fields = append(fields, f)
			}
			continue
		}
		if !sf.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		fields = append(fields, schemaField{name: name, doc: sf.Tag.Get("doc"), index: []int{i}, typ: sf.Type})
	}
	return fields
}

// knownKeys lists every dotted key of t, tables included, in file order.
func knownKeys(prefix string, t reflect.Type) []string {
	var keys []string
	for _, f := range tomlFields(t) {
		key := joinKey(prefix, f.name)
		keys = append(keys, key)
		if f.typ.Kind() == reflect.Struct {
			keys = append(keys, knownKeys(key, f.typ)...)
		}
	}
	return keys
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}
