package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// maxSafeFloatInt is the largest integer a float64 holds exactly; TOML
// integers beyond it are not accepted for float keys (as BurntSushi/toml).
const maxSafeFloatInt = 1<<53 - 1

// LoadTrain reads the TOML file at path over DefaultTrain() (a key the file
// leaves out keeps its default) and checks it. It reports, each with the
// file, line and dotted key, every unknown key (suggesting the closest known
// one), every value of the wrong type and, when no value has the wrong type,
// every problem Validate finds. Such problems are *FieldErrors joined with
// errors.Join; a file that is not TOML gives one error that wraps
// toml.ParseError.
func LoadTrain(path string) (Train, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Train{}, fmt.Errorf("load train config: %w", err)
	}
	return decodeTrain(path, string(data))
}

// LoadMiner reads a miner config the way LoadTrain reads a train config.
func LoadMiner(path string) (Miner, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Miner{}, fmt.Errorf("load miner config: %w", err)
	}
	return decode(path, string(data), DefaultMiner(), minerSchema, Miner.Validate)
}

// decodeTrain is LoadTrain on a document already read; file names it in
// messages.
func decodeTrain(file, doc string) (Train, error) {
	return decode(file, doc, DefaultTrain(), trainSchema, Train.Validate)
}

// decode reads doc over defaults t, strictly (see LoadTrain), as the file
// of the role s: a key s refuses is an error that names it and says why.
func decode[T any](file, doc string, t T, s schema, validate func(T) error) (T, error) {
	var zero T
	var raw map[string]any
	if _, err := toml.Decode(doc, &raw); err != nil {
		return zero, tomlError(file, doc, err)
	}
	lines := keyLines(doc)
	root := reflect.TypeFor[T]()
	unknown, mistyped := checkTable("", raw, root, s)
	errs := append(unknown, mistyped...)
	for _, e := range errs {
		e.Line = lineOf(lines, e.Key)
	}
	sort.SliceStable(errs, func(i, j int) bool { return lineOrder(errs[i].Line) < lineOrder(errs[j].Line) })
	if len(mistyped) == 0 {
		md, err := toml.Decode(doc, &t)
		if err != nil {
			return zero, tomlError(file, doc, err)
		}
		errs = append(errs, missedUnknown(md.Undecoded(), unknown, s)...)
		// A value that failed validation may be a default the file does
		// not set: only keys the file defines get a line.
		for _, e := range fieldErrors(validate(t)) {
			e.Line = lines[e.Key]
			errs = append(errs, e)
		}
	}
	if len(errs) == 0 {
		return t, nil
	}
	joined := make([]error, len(errs))
	for i, e := range errs {
		e.File = file
		joined[i] = e
	}
	return zero, errors.Join(joined...)
}

// missedUnknown returns the undecoded keys that checkTable did not report,
// itself or through a table above it. There should be none; the decoder's
// own list is the last word on what the config does not use.
func missedUnknown(undecoded []toml.Key, reported []*FieldError, s schema) []*FieldError {
	var missed []*FieldError
	for _, k := range undecoded {
		key := k.String()
		if !slices.ContainsFunc(reported, func(e *FieldError) bool {
			return key == e.Key || strings.HasPrefix(key, e.Key+".")
		}) {
			missed = append(missed, unknownKey(key, s))
		}
	}
	return missed
}

// checkTable returns the keys of raw that the struct type t does not have
// (a table once, not its keys) or that the role s refuses, and the values
// whose TOML type cannot be decoded into t's fields, in the order of raw's
// keys by name. A refused key whose value would not decode either is
// among the mistyped, which stop decoding, with its refusal as the error.
func checkTable(prefix string, raw map[string]any, t reflect.Type, s schema) (unknown, mistyped []*FieldError) {
	fields := map[string]schemaField{}
	for _, f := range tomlFields(t) {
		fields[f.name] = f
	}
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		key, v := joinKey(prefix, name), raw[name]
		f, ok := fields[name]
		_, refused := s.refused[key]
		switch {
		case !ok:
			unknown = append(unknown, unknownKey(key, s))
		case refused && !fits(f.typ, v):
			mistyped = append(mistyped, s.refusal(key))
		case refused:
			unknown = append(unknown, s.refusal(key))
		case f.typ.Kind() == reflect.Struct:
			if sub, ok := v.(map[string]any); ok {
				u, m := checkTable(key, sub, f.typ, s)
				unknown, mistyped = append(unknown, u...), append(mistyped, m...)
			} else {
				mistyped = append(mistyped, &FieldError{Key: key, Reason: "want a table, got " + describe(v)})
			}
		case !fits(f.typ, v):
			mistyped = append(mistyped, &FieldError{Key: key, Reason: fmt.Sprintf("want %s, got %s", typeName(f.typ), describe(v))})
		}
	}
	return unknown, mistyped
}

// fits says whether BurntSushi/toml can decode the TOML value v into a
// field of type t. Kinds the config does not use are left to the decoder.
func fits(t reflect.Type, v any) bool {
	switch t.Kind() {
	case reflect.String:
		_, ok := v.(string)
		return ok
	case reflect.Bool:
		_, ok := v.(bool)
		return ok
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(int64)
		return ok && !reflect.New(t).Elem().OverflowInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(int64)
		return ok && n >= 0 && !reflect.New(t).Elem().OverflowUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		switch n := v.(type) {
		case float64:
			return true
		case int64:
			return n >= -maxSafeFloatInt && n <= maxSafeFloatInt
		}
		return false
	case reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			return false
		}
		for _, it := range items {
			if !fits(t.Elem(), it) {
				return false
			}
		}
		return true
	}
	return true
}

// typeName says what a field of type t wants, for messages.
func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a float"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(typeName(t.Elem()), "a "), "an ") + "s"
	}
	return "a " + t.String()
}

// describe names a decoded TOML value's type and, for scalars, its value.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return "string " + tomlString(shorten(v))
	case int64:
		return "integer " + strconv.FormatInt(v, 10)
	case float64:
		return "float " + tomlFloat(v)
	case bool:
		return "boolean " + strconv.FormatBool(v)
	case time.Time:
		return "datetime " + v.Format(time.RFC3339Nano)
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}

// unknownKey reports a key the config does not have, suggesting a key the
// role reads within edit distance 2, or else one with the same last name
// in another table ("lr" for "optim.lr").
func unknownKey(key string, sc schema) *FieldError {
	e := &FieldError{Key: key, Reason: "unknown key"}
	if s := suggest(key, sc.known()); s != "" {
		e.Reason += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return e
}

// suggest picks the known key an unknown one most likely meant, or "".
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if strings.HasPrefix(key, k+".") {
			continue // the table the key is in
		}
		if d := editDistance(key, k, bestDist); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return best
	}
	leaf := key[strings.LastIndexByte(key, '.')+1:]
	for _, k := range known {
		if k[strings.LastIndexByte(k, '.')+1:] == leaf {
			return k
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b in runes, or
// limit when it is at least limit (which also bounds the work on long keys).
func editDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(rb)], limit)
}

// lineOf is the line of key, or of the nearest table holding it that has
// one (keys inside inline tables).
func lineOf(lines map[string]int, key string) int {
	for {
		if l, ok := lines[key]; ok {
			return l
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
}

// lineOrder sorts keys the file defines by line, and the others last.
func lineOrder(line int) int {
	if line == 0 {
		return math.MaxInt
	}
	return line
}

// fieldErrors unpacks Validate's joined errors.
func fieldErrors(err error) []*FieldError {
	if err == nil {
		return nil
	}
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	out := make([]*FieldError, 0, len(list))
	for _, e := range list {
		var fe *FieldError
		if !errors.As(e, &fe) {
			fe = &FieldError{Key: "config", Reason: e.Error()}
		}
		out = append(out, fe)
	}
	return out
}

// syntaxError is a config file that is not valid TOML.
type syntaxError struct {
	file      string
	line, col int
	pe        toml.ParseError
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.file, e.line, e.col, e.pe.Message)
}

func (e *syntaxError) Unwrap() error { return e.pe }

// tomlError places a BurntSushi/toml error in file. Its byte offset gives
// the position: the line it reports for an unexpected newline is the next.
func tomlError(file, doc string, err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", file, err)
	}
	e := &syntaxError{file: file, line: pe.Position.Line, col: pe.Position.Col, pe: pe}
	if start := pe.Position.Start; start > 0 && start <= len(doc) {
		e.line = 1 + strings.Count(doc[:start], "\n")
		e.col = start - strings.LastIndexByte(doc[:start], '\n')
	}
	return e
}

// keyLines maps each dotted key a TOML document defines (tables and the
// tables implied by dotted keys included) to the line that first defines
// it, for messages. It understands [tables], [[arrays]], dotted and quoted
// keys and skips multi-line strings; keys it cannot place (inside inline
// tables) get no line.
func keyLines(doc string) map[string]int {
	lines := map[string]int{}
	record := func(key []string, line int) {
		for i := range key {
			k := strings.Join(key[:i+1], ".")
			if _, ok := lines[k]; !ok {
				lines[k] = line
			}
		}
	}
	var table []string
	closer := "" // the delimiter that ends the multi-line string we are in
	for i, text := range strings.Split(doc, "\n") {
		s := strings.TrimSpace(text)
		switch {
		case closer != "":
			if strings.Contains(s, closer) {
				closer = ""
			}
		case strings.HasPrefix(s, "["):
			if key, _, ok := parseKey(strings.TrimLeft(s, "[")); ok {
				table = key
				record(key, i+1)
			}
		default:
			key, rest, ok := parseKey(s)
			if !ok || !strings.HasPrefix(rest, "=") {
				continue
			}
			record(append(append([]string(nil), table...), key...), i+1)
			closer = multilineOpener(strings.TrimSpace(rest[1:]))
		}
	}
	return lines
}

// parseKey reads a possibly dotted, possibly quoted TOML key from the start
// of s and returns its parts and the rest of s after blanks.
func parseKey(s string) (key []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		var part string
		switch {
		case strings.HasPrefix(s, `"`):
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, "", false
			}
			part = s[1:end]
			if u, err := strconv.Unquote(s[:end+1]); err == nil {
				part = u
			}
			s = s[end+1:]
		case strings.HasPrefix(s, "'"):
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, "", false
			}
			part, s = s[1:end+1], s[end+2:]
		default:
			end := strings.IndexFunc(s, func(r rune) bool { return !bareKeyRune(r) })
			if end < 0 {
				end = len(s)
			}
			if end == 0 {
				return nil, "", false
			}
			part, s = s[:end], s[end:]
		}
		key = append(key, part)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return key, s, true
		}
		s = s[1:]
	}
}

func bareKeyRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// multilineOpener returns the delimiter of a multi-line string that value
// opens and does not close on the same line, or "".
func multilineOpener(value string) string {
	for _, q := range []string{`"""`, `'''`} {
		if strings.HasPrefix(value, q) && !strings.Contains(value[len(q):], q) {
			return q
		}
	}
	return ""
}
