package torch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// stFile frames a JSON header as a safetensors file followed by bufLen zero
// bytes of data.
func stFile(header string, bufLen int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, bufLen)...)
}

// tensorJSON is one tensor entry of a header.
func tensorJSON(name, dtype, shape string, begin, end int64) string {
	return fmt.Sprintf(`%q:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, name, dtype, shape, begin, end)
}

func TestParseSafetensorsHeaderRejects(t *testing.T) {
	lenOnly := func(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, n) }
	a := func(begin, end int64) string { return tensorJSON("a", "F32", "[2]", begin, end) }
	cases := []struct {
		name     string
		file     []byte
		fileSize int64 // 0: len(file)
		want     []string
	}{
		{"file shorter than 8 bytes", []byte{1, 2, 3}, 0, []string{"shorter than", "3 bytes"}},
		{"header longer than file", append(lenOnly(100), "{}"...), 0, []string{"larger than the file", "100", "10 bytes"}},
		{"header above cap", lenOnly(200 << 20), 1 << 30, []string{"cap", "209715200"}},
		{"empty header", stFile("", 0), 0, []string{"invalid JSON"}},
		{"truncated JSON", stFile(`{"a":`, 0), 0, []string{"invalid JSON"}},
		{"broken JSON", stFile(`{"a" 1}`, 0), 0, []string{"invalid JSON"}},
		{"missing comma", stFile(`{"__metadata__":{} "b":{}}`, 0), 0, []string{"invalid JSON"}},
		{"trailing comma", stFile(`{"__metadata__":{},}`, 0), 0, []string{"invalid JSON"}},
		{"trailing data", stFile(`{} {}`, 0), 0, []string{"trailing data"}},
		{"header is an array", stFile(`[1,2]`, 0), 0, []string{"not a JSON object"}},
		{"header is a string", stFile(`"x"`, 0), 0, []string{"not a JSON object"}},
		{"tensor is a number", stFile(`{"a":5}`, 0), 0, []string{`tensor "a"`, "not a JSON object"}},
		{"unknown dtype", stFile("{"+tensorJSON("w", "F8", "[1]", 0, 1)+"}", 1), 0, []string{`tensor "w"`, `unknown dtype "F8"`}},
		{"dtype not a string", stFile(`{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, 4), 0, []string{`tensor "w"`, "dtype"}},
		{"dtype null", stFile(`{"w":{"dtype":null,"shape":[1],"data_offsets":[0,4]}}`, 4), 0, []string{`tensor "w"`, "unknown dtype"}},
		{"missing shape", stFile(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, 4), 0, []string{`tensor "w"`, "missing shape"}},
		{"missing data_offsets", stFile(`{"w":{"dtype":"F32","shape":[1]}}`, 4), 0, []string{`tensor "w"`, "missing data_offsets"}},
		{"shape null", stFile(`{"w":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}`, 4), 0, []string{`tensor "w"`, "shape"}},
		{"shape of floats", stFile("{"+tensorJSON("w", "F32", "[1.5]", 0, 4)+"}", 4), 0, []string{`tensor "w"`, "shape"}},
		{"negative dimension", stFile("{"+tensorJSON("w", "F32", "[2,-1]", 0, 0)+"}", 0), 0, []string{`tensor "w"`, "negative dimension"}},
		{"numel overflow", stFile("{"+tensorJSON("w", "U8", "[4294967296,4294967296]", 0, 0)+"}", 0), 0, []string{`tensor "w"`, "overflow"}},
		{"byte size overflow", stFile("{"+tensorJSON("w", "F32", "[4611686018427387904]", 0, 0)+"}", 0), 0, []string{`tensor "w"`, "overflow"}},
		{"dimension beyond int64", stFile("{"+tensorJSON("w", "F32", "[9223372036854775808]", 0, 0)+"}", 0), 0, []string{`tensor "w"`, "shape"}},
		{"three offsets", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}`, 8), 0, []string{`tensor "a"`, "data_offsets", "3 values"}},
		{"one offset", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}}`, 8), 0, []string{`tensor "a"`, "data_offsets", "1 values"}},
		{"negative offset", stFile("{"+a(-8, 0)+"}", 8), 0, []string{`tensor "a"`, "negative offset"}},
		{"float offset", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}}`, 8), 0, []string{`tensor "a"`, "data_offsets"}},
		{"offsets null", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":null}}`, 8), 0, []string{`tensor "a"`, "data_offsets"}},
		{"begin after end", stFile("{"+a(8, 0)+"}", 8), 0, []string{`tensor "a"`, "begin is after end"}},
		{"size mismatch", stFile("{"+a(0, 12)+"}", 12), 0, []string{`tensor "a"`, "span 12 bytes", "needs 8"}},
		{"past the buffer", stFile("{"+a(0, 8)+"}", 4), 0, []string{`tensor "a"`, "past the end", "4-byte"}},
		{"overlap", stFile("{"+a(0, 8)+","+tensorJSON("b", "F32", "[2]", 4, 12)+"}", 12), 0, []string{"overlap", `"a"`, `"b"`}},
		{"zero-size tensor inside another", stFile("{"+a(0, 8)+","+tensorJSON("z", "F32", "[0]", 4, 4)+"}", 8), 0, []string{"overlap", `"z"`}},
		{"same range twice", stFile("{"+a(0, 8)+","+tensorJSON("b", "F32", "[2]", 0, 8)+"}", 8), 0, []string{"overlap"}},
		{"hole between tensors", stFile("{"+a(0, 8)+","+tensorJSON("b", "F32", "[2]", 12, 20)+"}", 20), 0, []string{"hole", "4 bytes", `"b"`}},
		{"hole at start", stFile("{"+a(4, 12)+"}", 12), 0, []string{"hole", "4 bytes", `"a"`}},
		{"unindexed tail", stFile("{"+a(0, 8)+"}", 9), 0, []string{"hole", "1 bytes", "end"}},
		{"data without tensors", stFile("{}", 3), 0, []string{"hole", "3 bytes"}},
		{"duplicate tensor", stFile("{"+a(0, 8)+","+a(0, 8)+"}", 8), 0, []string{"duplicate", `"a"`}},
		{"duplicate by escape", stFile("{"+a(0, 8)+`,"\u0061":{}}`, 8), 0, []string{"duplicate", `"a"`}},
		{"duplicate field", stFile(`{"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}`, 8), 0, []string{`tensor "a"`, `duplicate key "dtype"`}},
		{"duplicate metadata", stFile(`{"__metadata__":{},"__metadata__":{}}`, 0), 0, []string{"duplicate", "__metadata__"}},
		{"metadata value not a string", stFile(`{"__metadata__":{"step":3}}`, 0), 0, []string{"__metadata__", `"step"`, "not a string"}},
		{"metadata duplicate key", stFile(`{"__metadata__":{"k":"1","k":"2"}}`, 0), 0, []string{"__metadata__", `duplicate key "k"`}},
		{"metadata not an object", stFile(`{"__metadata__":"x"}`, 0), 0, []string{"__metadata__", "not a JSON object"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			size := c.fileSize
			if size == 0 {
				size = int64(len(c.file))
			}
			h, err := ParseSafetensorsHeader(c.file, size)
			if err == nil {
				t.Fatalf("parsed %+v, want an error mentioning %q", h, c.want)
			}
			if !errors.Is(err, ErrInvalidSafetensors) {
				t.Errorf("error %q does not wrap ErrInvalidSafetensors", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseSafetensorsHeaderShortPrefix(t *testing.T) {
	file := stFile("{"+tensorJSON("a", "F32", "[2]", 0, 8)+"}", 8)
	for _, n := range []int{0, 7, 8, 20, len(file) - 9} {
		_, err := ParseSafetensorsHeader(file[:n], int64(len(file)))
		if err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("prefix of %d bytes: got %v, want an error saying it is truncated", n, err)
		}
	}
}

func TestParseSafetensorsHeaderLayout(t *testing.T) {
	// Listed out of offset order, with zero-size tensors sharing offsets.
	header := "{" + strings.Join([]string{
		tensorJSON("c", "I8", "[3]", 10, 13),
		tensorJSON("z2", "F32", "[0,5]", 10, 10),
		tensorJSON("a", "F64", "[]", 0, 8),
		tensorJSON("b", "BF16", "[1]", 8, 10),
		tensorJSON("z1", "F16", "[0]", 13, 13),
	}, ",") + `,"__metadata__":{"format":"pt","note":"a \"quoted\" value"}}`
	h, err := ParseSafetensorsHeader(stFile(header, 13), int64(len(header))+8+13)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ti := range h.Tensors {
		names = append(names, ti.Name)
	}
	if want := []string{"a", "b", "z2", "c", "z1"}; !slices.Equal(names, want) {
		t.Errorf("tensors in order %v, want by offset %v", names, want)
	}
	if h.DataOffset != int64(8+len(header)) {
		t.Errorf("DataOffset %d, want %d", h.DataOffset, 8+len(header))
	}
	if h.Metadata["note"] != `a "quoted" value` || h.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", h.Metadata)
	}
	a, ok := h.Lookup("a")
	if !ok || a.DType != "F64" || len(a.Shape) != 0 || a.Numel() != 1 {
		t.Errorf("Lookup(a) = %+v, %v; want the F64 scalar", a, ok)
	}
	if z, _ := h.Lookup("z2"); z.Numel() != 0 {
		t.Errorf("z2 has %d elements, want 0", z.Numel())
	}
	if _, ok := h.Lookup("missing"); ok {
		t.Error("Lookup found a tensor that is not there")
	}
}

// TestParsePythonWrittenFile parses bytes laid out as Python's safetensors
// save_file writes them: "__metadata__" first, tensors sorted by dtype
// (widest first) then name, header padded with spaces to a multiple of 8.
func TestParsePythonWrittenFile(t *testing.T) {
	header := `{"__metadata__":{"format":"pt"},` +
		`"i":{"dtype":"I64","shape":[],"data_offsets":[0,8]},` +
		`"d":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},` +
		`"w":{"dtype":"F32","shape":[2,2],"data_offsets":[16,32]},` +
		`"b":{"dtype":"BF16","shape":[2],"data_offsets":[32,36]},` +
		`"h":{"dtype":"F16","shape":[3],"data_offsets":[36,42]}}` + "      "
	var file []byte
	file = append(file, 0x38, 0x01, 0, 0, 0, 0, 0, 0) // 312, the padded header length
	file = append(file, header...)
	file = append(file, 7, 0, 0, 0, 0, 0, 0, 0)                         // i: int64 7
	file = append(file, 0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f) // d: 0.1
	file = append(file, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40)
	file = append(file, 0x80, 0x3f, 0x00, 0xc0)             // b: 1, -2
	file = append(file, 0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b) // h: 1, -2, 65504
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Header().DataOffset != 320 || f.Header().Metadata["format"] != "pt" {
		t.Errorf("DataOffset %d, metadata %v", f.Header().DataOffset, f.Header().Metadata)
	}
	want := map[string][]float32{
		"d": {float32(0.1)},
		"w": {1, 2, 3, 4},
		"b": {1, -2},
		"h": {1, -2, 65504},
	}
	for name, w := range want {
		got := make([]float32, len(w))
		if err := f.ReadFloat32(name, got); err != nil {
			t.Fatal(err)
		}
		// Exact: widening f16 and narrowing f64 to float32 round once, by IEEE rules.
		if !slices.Equal(got, w) {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
	err = f.ReadFloat32("i", make([]float32, 1))
	if err == nil || !strings.Contains(err.Error(), "I64") {
		t.Errorf("reading the I64 tensor as float32: got %v, want an error naming I64", err)
	}
	err = f.ReadFloat32("w", make([]float32, 3))
	if err == nil || !strings.Contains(err.Error(), "3") || !strings.Contains(err.Error(), "4 elements") {
		t.Errorf("reading 4 elements into 3: got %v, want an error naming both counts", err)
	}
	if err := f.ReadFloat32("nope", nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("reading a missing tensor: got %v", err)
	}
}

func TestFloat16ToFloat32(t *testing.T) {
	cases := []struct {
		bits uint16
		want float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x3555, 0.333251953125},
		{0x0001, 0x1p-24}, {0x03ff, 1023 * 0x1p-24}, {0x0400, 0x1p-14},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	}
	for _, c := range cases {
		// Exact: every f16 is a float32 (bit manipulation, no arithmetic).
		if got := float16ToFloat32(c.bits); got != c.want {
			t.Errorf("f16 %#04x = %g, want %g", c.bits, got, c.want)
		}
	}
	if got := float16ToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("f16 0x8000 = %g, want -0", got)
	}
	if got := math.Float32bits(float16ToFloat32(0x7e01)); got != 0x7fc02000 {
		t.Errorf("f16 NaN 0x7e01 = %#08x, want NaN 0x7fc02000 with the payload kept", got)
	}
	// Every f16 against an independent definition: (-1)^s · 2^(e-15) · 1.m.
	for b := range 1 << 16 {
		h := uint16(b)
		sign, exp, mant := float64(1), int(h>>10&0x1f), float64(h&0x3ff)
		if h&0x8000 != 0 {
			sign = -1
		}
		var want float64
		switch exp {
		case 0x1f:
			want = math.Inf(int(sign))
			if mant != 0 {
				want = math.NaN()
			}
		case 0:
			want = sign * math.Ldexp(mant, -24)
		default:
			want = sign * math.Ldexp(1+mant/1024, exp-15)
		}
		got := float16ToFloat32(h)
		if math.IsNaN(want) != math.IsNaN(float64(got)) || !math.IsNaN(want) && float32(want) != got {
			t.Fatalf("f16 %#04x = %g, want %g", h, got, want)
		}
	}
}

func TestBfloat16ToFloat32(t *testing.T) {
	cases := []struct {
		bits uint16
		want float32
	}{
		{0x3f80, 1}, {0xc000, -2}, {0x477f, 65280}, {0x0001, 0x1p-133},
		{0x7f80, float32(math.Inf(1))}, {0xff80, float32(math.Inf(-1))},
	}
	for _, c := range cases {
		// Exact: a bf16 is the top half of a float32.
		if got := bfloat16ToFloat32(c.bits); got != c.want {
			t.Errorf("bf16 %#04x = %g, want %g", c.bits, got, c.want)
		}
	}
	if got := bfloat16ToFloat32(0x7fc0); !math.IsNaN(float64(got)) {
		t.Errorf("bf16 0x7fc0 = %g, want NaN", got)
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	for round := range 20 {
		var tensors []NamedTensor
		for i := range rng.IntN(6) {
			shape := make([]int64, rng.IntN(4)) // rank 0 is a scalar
			for d := range shape {
				shape[d] = rng.Int64N(5) // a 0 makes a zero-size tensor
			}
			numel, _ := shapeNumel(shape)
			data := make([]float32, numel)
			for j := range data {
				data[j] = math.Float32frombits(rng.Uint32()) // NaNs included
			}
			tensors = append(tensors, NamedTensor{Name: fmt.Sprintf("layer.%d/w<%d>", i, round), Shape: shape, Data: data})
		}
		if round == 0 { // crosses the 4 MiB read and 1 MiB write chunks
			tensors = append(tensors, NamedTensor{Name: "big", Shape: []int64{1500, 1001}, Data: make([]float32, 1500*1001)})
			for j := range tensors[len(tensors)-1].Data {
				tensors[len(tensors)-1].Data[j] = float32(j)
			}
		}
		meta := map[string]string{"round": fmt.Sprint(round)}
		if round%2 == 1 {
			meta = nil
		}
		checkRoundTrip(t, filepath.Join(dir, fmt.Sprintf("r%d.safetensors", round)), tensors, meta)
	}
}

func checkRoundTrip(t *testing.T, path string, tensors []NamedTensor, meta map[string]string) {
	t.Helper()
	if err := WriteSafetensors(path, tensors, meta); err != nil {
		t.Fatal(err)
	}
	f, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := f.Header()
	if h.DataOffset%8 != 0 {
		t.Errorf("data buffer starts at %d, not a multiple of 8", h.DataOffset)
	}
	if len(h.Metadata) != len(meta) || h.Metadata["round"] != meta["round"] {
		t.Errorf("metadata %v, want %v", h.Metadata, meta)
	}
	if len(h.Tensors) != len(tensors) {
		t.Fatalf("%d tensors, want %d", len(h.Tensors), len(tensors))
	}
	for i, want := range tensors {
		info := h.Tensors[i] // written in order, so sorted by offset in the same order
		if info.Name != want.Name || info.DType != "F32" || !slices.Equal(info.Shape, want.Shape) {
			t.Errorf("tensor %d = %+v, want %s %v F32", i, info, want.Name, want.Shape)
		}
		got := make([]float32, len(want.Data))
		if err := f.ReadFloat32(want.Name, got); err != nil {
			t.Fatal(err)
		}
		for j := range got {
			// Exact: written and read back as bits.
			if math.Float32bits(got[j]) != math.Float32bits(want.Data[j]) {
				t.Fatalf("%s[%d] = %#x, want %#x", want.Name, j, math.Float32bits(got[j]), math.Float32bits(want.Data[j]))
			}
		}
	}
}

func TestWriteSafetensorsRejects(t *testing.T) {
	cases := []struct {
		name    string
		tensors []NamedTensor
		want    string
	}{
		{"numel mismatch", []NamedTensor{{Name: "a", Shape: []int64{2, 3}, Data: make([]float32, 5)}}, "6 elements but data has 5"},
		{"scalar without data", []NamedTensor{{Name: "a", Data: nil}}, "1 elements but data has 0"},
		{"negative dimension", []NamedTensor{{Name: "a", Shape: []int64{-1}}}, "negative"},
		{"duplicate name", []NamedTensor{{Name: "a", Data: []float32{1}}, {Name: "a", Data: []float32{2}}}, "duplicate"},
		{"reserved name", []NamedTensor{{Name: "__metadata__", Data: []float32{1}}}, "reserved"},
		{"invalid UTF-8 name", []NamedTensor{{Name: "a\xff", Data: []float32{1}}}, "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.safetensors")
			err := WriteSafetensors(path, c.tensors, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a failed write left %s behind: %v", path, err)
			}
		})
	}
}

func TestOpenSafetensorsErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenSafetensors(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
	path := filepath.Join(dir, "corrupt.safetensors")
	if err := os.WriteFile(path, stFile(`{"a":{}}`, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenSafetensors(path)
	if !errors.Is(err, ErrInvalidSafetensors) || !strings.Contains(err.Error(), path) {
		t.Errorf("corrupt file: got %v, want ErrInvalidSafetensors naming %s", err, path)
	}
	if err := os.WriteFile(path, []byte{1, 2}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSafetensors(path); !errors.Is(err, ErrInvalidSafetensors) {
		t.Errorf("2-byte file: got %v, want ErrInvalidSafetensors", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := WriteFileAtomic(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFileAtomicFunc(path, func(w io.Writer) error {
		w.Write([]byte("half of the new con"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the callback's error", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("after a failed write the file holds %q, want the old %q", got, "old")
	}
	if err := WriteFileAtomic(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "new" {
		t.Errorf("file holds %q, want %q", got, "new")
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v (%v), want 0644", st.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only %s: temporary files left behind", len(entries), path)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "no", "such", "dir"), nil); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
