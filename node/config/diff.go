package config

import (
	"fmt"
	"reflect"

	"github.com/BurntSushi/toml"
)

// Change is one key whose value differs between two configs of a role.
type Change struct {
	Key      string // dotted key, e.g. optim.lr
	Old, New string // the values as TOML literals; "(hidden)" for a Sensitive key
}

// String reads "optim.lr: 0.002 → 0.001".
func (c Change) String() string { return fmt.Sprintf("%s: %s → %s", c.Key, c.Old, c.New) }

// Diff lists the keys the role reads whose values differ between old and
// new, in file order.
func Diff[T Role](old, new T) []Change {
	a, b := reflect.ValueOf(old), reflect.ValueOf(new)
	var out []Change
	for _, l := range schemaOf[T]().leaves() {
		va, vb := a.FieldByIndex(l.index), b.FieldByIndex(l.index)
		if reflect.DeepEqual(va.Interface(), vb.Interface()) || bothEmptyLists(va, vb) {
			continue
		}
		c := Change{Key: l.key, Old: "(hidden)", New: "(hidden)"}
		if !Sensitive(l.key) {
			c.Old, c.New = diffLiteral(va), diffLiteral(vb)
		}
		out = append(out, c)
	}
	return out
}

// DiffTrainTOML lists the keys whose values differ between two train
// config files as written by toml.Encode (a checkpoint's copy and the
// running config), each read over DefaultTrain() so that a key one of
// them lacks counts as its default.
func DiffTrainTOML(old, new []byte) ([]Change, error) {
	a, b := DefaultTrain(), DefaultTrain()
	if _, err := toml.Decode(string(old), &a); err != nil {
		return nil, fmt.Errorf("diff train configs: %w", err)
	}
	if _, err := toml.Decode(string(new), &b); err != nil {
		return nil, fmt.Errorf("diff train configs: %w", err)
	}
	return Diff(a, b), nil
}

// bothEmptyLists treats a nil list and an empty one as equal: TOML cannot
// tell them apart.
func bothEmptyLists(a, b reflect.Value) bool {
	return a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0
}

func diffLiteral(v reflect.Value) string {
	if s, err := valueLiteral(v); err == nil {
		return s
	}
	return fmt.Sprint(v.Interface())
}
