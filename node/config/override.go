package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
)

// Role is the config of one dtrain role: Train, Miner or Validator.
type Role interface {
	Train | Miner | Validator
	Validate() error
}

// Default is the role's default config: DefaultTrain, DefaultMiner or
// DefaultValidator.
func Default[T Role]() T {
	var t T
	switch p := any(&t).(type) {
	case *Train:
		*p = DefaultTrain()
	case *Miner:
		*p = DefaultMiner()
	case *Validator:
		*p = DefaultValidator()
	}
	return t
}

// Load reads the role's config file at path as LoadTrain reads a train
// config.
func Load[T Role](path string) (T, error) {
	s := schemaOf[T]()
	data, err := os.ReadFile(path)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("load %s config: %w", s.name, err)
	}
	return decode(path, string(data), Default[T](), s, T.Validate)
}

// Marshal writes cfg as a commented config file of its role, every key the
// role reads under its doc comment, as MarshalMiner does a miner's.
func Marshal[T Role](cfg T) ([]byte, error) {
	s := schemaOf[T]()
	var b bytes.Buffer
	if err := writeTable(&b, "", reflect.ValueOf(cfg), s); err != nil {
		return nil, fmt.Errorf("%s config: %w", s.name, err)
	}
	return b.Bytes(), nil
}

// schemaOf is the schema of the role whose config type is T.
func schemaOf[T Role]() schema {
	switch reflect.TypeFor[T]() {
	case minerSchema.root:
		return minerSchema
	case validatorSchema.root:
		return validatorSchema
	}
	return trainSchema
}

// envPrefix starts every variable that overrides a config key.
const envPrefix = "DTRAIN_"

// globalEnv are variables whose names a config key derives but which a
// global flag of dtrain reads, for every command: ApplyEnv leaves them to
// the flag so that one variable never means two things. Each maps to the
// key it would override, which the flag sets too (libtorch's threads,
// which --threads applies over the file's value); a test keeps any other
// key from deriving one of these or another variable dtrain reads.
var globalEnv = map[string]string{
	"DTRAIN_THREADS": "threads",
}

// EnvName is the environment variable that overrides the dotted key:
// DTRAIN_ and the key in upper case, dots as underscores ("swarm.mode" →
// DTRAIN_SWARM_MODE, "run_id" → DTRAIN_RUN_ID).
func EnvName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// EnvSetting is one key an environment variable set.
type EnvSetting struct {
	Var   string // the variable, e.g. DTRAIN_SWARM_MODE
	Key   string // the dotted key, e.g. swarm.mode
	Value string // the variable's text (see Sensitive before showing it)
}

// ApplyEnv sets each key of cfg whose variable (EnvName) lookup finds
// non-empty (an empty variable counts as unset, as for dtrain's flags),
// and returns what it set in file order. Lists are comma-separated. A
// role's refused keys and the globalEnv names are not read. Values that do
// not parse are *FieldErrors whose File is "$VARIABLE", joined; cfg is
// then unchanged.
func ApplyEnv[T Role](cfg *T, lookup func(string) (string, bool)) ([]EnvSetting, error) {
	s := schemaOf[T]()
	next := reflect.ValueOf(cfg).Elem()
	work := reflect.New(next.Type()).Elem()
	work.Set(next)
	var set []EnvSetting
	var errs []error
	for _, l := range s.leaves() {
		name := EnvName(l.key)
		if _, global := globalEnv[name]; global {
			continue
		}
		text, ok := lookup(name)
		if !ok || text == "" {
			continue
		}
		if err := setLeaf(work.FieldByIndex(l.index), text); err != nil {
			errs = append(errs, &FieldError{File: "$" + name, Key: l.key, Reason: err.Error(), Got: tomlString(shorten(text))})
			continue
		}
		set = append(set, EnvSetting{Var: name, Key: l.key, Value: text})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	next.Set(work)
	return set, nil
}

// ApplySet sets the keys of "key=value" assignments (the --set flag's) in
// cfg, in order, a later one winning. Keys are dotted as in the file;
// lists are comma-separated. An unknown key (with a suggestion), a table,
// a key the role refuses and a value that does not parse are
// *FieldErrors whose File is "--set", joined; cfg is then unchanged.
func ApplySet[T Role](cfg *T, assignments []string) error {
	s := schemaOf[T]()
	leaves := map[string]leaf{}
	for _, l := range s.leaves() {
		leaves[l.key] = l
	}
	next := reflect.ValueOf(cfg).Elem()
	work := reflect.New(next.Type()).Elem()
	work.Set(next)
	var errs []error
	for _, a := range assignments {
		key, text, ok := strings.Cut(a, "=")
		key = strings.TrimSpace(key)
		l, known := leaves[key]
		_, refused := s.refused[key]
		var e *FieldError
		switch {
		case !ok:
			e = &FieldError{Key: a, Reason: "want key=value, e.g. swarm.mode=gradients"}
		case refused:
			e = s.refusal(key)
		case !known && isTable(s, key):
			e = &FieldError{Key: key, Reason: "is a table: set one of its keys, e.g. " + firstLeaf(s, key)}
		case !known:
			e = unknownKey(key, s)
		default:
			if err := setLeaf(work.FieldByIndex(l.index), text); err != nil {
				e = &FieldError{Key: key, Reason: err.Error(), Got: tomlString(shorten(text))}
			}
		}
		if e != nil {
			e.File = "--set"
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	next.Set(work)
	return nil
}

// Sensitive says whether key's value must not be shown (logged, printed
// in a diff): a key whose name says token or key.
func Sensitive(key string) bool {
	k := strings.ToLower(key)
	return strings.Contains(k, "token") || strings.Contains(k, "key")
}

// leaf is one key of a role that holds a value, not a table.
type leaf struct {
	key   string
	index []int // field index path from the root struct (FieldByIndex)
	typ   reflect.Type
}

// leaves lists the value keys the role reads, in file order.
func (s schema) leaves() []leaf {
	var out []leaf
	var walk func(prefix string, index []int, t reflect.Type)
	walk = func(prefix string, index []int, t reflect.Type) {
		for _, f := range tomlFields(t) {
			key := joinKey(prefix, f.name)
			idx := append(append([]int(nil), index...), f.index...)
			if f.typ.Kind() == reflect.Struct {
				walk(key, idx, f.typ)
				continue
			}
			if _, refused := s.refused[key]; !refused {
				out = append(out, leaf{key: key, index: idx, typ: f.typ})
			}
		}
	}
	walk("", nil, s.root)
	return out
}

func isTable(s schema, key string) bool { return firstLeaf(s, key) != "" }

// firstLeaf is the first value key inside the table key, or "".
func firstLeaf(s schema, key string) string {
	for _, l := range s.leaves() {
		if strings.HasPrefix(l.key, key+".") {
			return l.key + "=…"
		}
	}
	return ""
}

// setLeaf parses text as the type of v and stores it: strings as they
// are, lists comma-separated (blanks around items trimmed, "" = empty).
func setLeaf(v reflect.Value, text string) error {
	switch v.Kind() {
	case reflect.String:
		v.SetString(text)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			return errors.New("want true or false")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, v.Type().Bits())
		if err != nil {
			return errors.New("want " + typeName(v.Type()))
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(text), 10, v.Type().Bits())
		if err != nil {
			return errors.New("want " + typeName(v.Type()))
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(text), v.Type().Bits())
		if err != nil {
			return errors.New("want " + typeName(v.Type()))
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("cannot set a %s from text", v.Type())
		}
		items := []string{}
		if strings.TrimSpace(text) != "" {
			for _, it := range strings.Split(text, ",") {
				items = append(items, strings.TrimSpace(it))
			}
		}
		v.Set(reflect.ValueOf(items).Convert(v.Type()))
	default:
		return fmt.Errorf("cannot set a %s from text", v.Type())
	}
	return nil
}
