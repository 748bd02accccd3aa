package torch

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
)

// ErrInvalidSafetensors is wrapped by every error that reports a malformed
// safetensors file, so callers can tell a corrupt file from an I/O failure.
var ErrInvalidSafetensors = errors.New("invalid safetensors")

const (
	// maxHeaderLen caps the JSON header so a corrupt length field cannot make
	// a reader allocate gigabytes before anything else is checked.
	maxHeaderLen = 100 << 20
	// readChunkBytes bounds the buffer ReadFloat32 reads a tensor through.
	readChunkBytes = 4 << 20
	// writeChunkBytes is the size of the buffer WriteSafetensors encodes into.
	writeChunkBytes = 1 << 20
	metadataKey     = "__metadata__"
)

// dtypeSizes holds the bytes per element of every dtype this package accepts.
var dtypeSizes = map[string]int64{
	"F64": 8, "F32": 4, "F16": 2, "BF16": 2,
	"I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}

// TensorInfo describes one tensor of a safetensors file.
type TensorInfo struct {
	Name  string
	DType string
	Shape []int64
	// Begin and End are byte offsets into the data buffer; End is exclusive.
	Begin, End int64
}

// Numel returns the number of elements of the tensor: 1 for a scalar (shape
// []), and -1 for a shape with a negative dimension or a product that
// overflows int64 (never the case for a TensorInfo from a parsed header).
func (t TensorInfo) Numel() int64 {
	n, err := shapeNumel(t.Shape)
	if err != nil {
		return -1
	}
	return n
}

// shapeNumel multiplies the dimensions of shape, refusing negative ones and
// products that overflow int64. A zero dimension makes the product 0 whatever
// the other dimensions are, so it never overflows.
func shapeNumel(shape []int64) (int64, error) {
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in shape %v", d, shape)
		}
	}
	if slices.Contains(shape, 0) {
		return 0, nil
	}
	n := int64(1)
	for _, d := range shape {
		if n > math.MaxInt64/d {
			return 0, fmt.Errorf("shape %v: element count overflows int64", shape)
		}
		n *= d
	}
	return n, nil
}

// SafetensorsHeader is the decoded JSON header of a safetensors file.
type SafetensorsHeader struct {
	// Tensors is sorted by Begin; together they cover the data buffer exactly.
	Tensors []TensorInfo
	// Metadata is the optional "__metadata__" map; nil when the file has none.
	Metadata map[string]string
	// DataOffset is 8+N, where the data buffer starts in the file.
	DataOffset int64

	index map[string]int
}

// Lookup returns the tensor called name.
func (h *SafetensorsHeader) Lookup(name string) (TensorInfo, bool) {
	if i, ok := h.index[name]; ok && i < len(h.Tensors) && h.Tensors[i].Name == name {
		return h.Tensors[i], true
	}
	// The index is missing or stale when the caller built or edited Tensors.
	for _, t := range h.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return TensorInfo{}, false
}

// headerLength reads the little-endian u64 header length from prefix and
// checks it against the cap and the file size, before anyone allocates it.
func headerLength(prefix []byte, fileSize int64) (int64, error) {
	if fileSize < 8 {
		return 0, fmt.Errorf("%w: file is %d bytes, shorter than the 8-byte header length", ErrInvalidSafetensors, fileSize)
	}
	if len(prefix) < 8 {
		return 0, fmt.Errorf("prefix of %d bytes is truncated: the header length alone takes 8", len(prefix))
	}
	n := binary.LittleEndian.Uint64(prefix)
	if n > maxHeaderLen {
		return 0, fmt.Errorf("%w: header length %d is above the cap of %d bytes", ErrInvalidSafetensors, n, maxHeaderLen)
	}
	if int64(n) > fileSize-8 {
		return 0, fmt.Errorf("%w: header length %d is larger than the file (%d bytes)", ErrInvalidSafetensors, n, fileSize)
	}
	return int64(n), nil
}

// ParseSafetensorsHeader decodes and validates the header of a safetensors
// file of fileSize bytes whose first bytes are prefix. Prefix must hold at
// least the 8-byte length and the N-byte JSON header that follows it.
func ParseSafetensorsHeader(prefix []byte, fileSize int64) (*SafetensorsHeader, error) {
	n, err := headerLength(prefix, fileSize)
	if err != nil {
		return nil, err
	}
	if int64(len(prefix)) < 8+n {
		return nil, fmt.Errorf("prefix of %d bytes is truncated: the header needs %d", len(prefix), 8+n)
	}
	h := &SafetensorsHeader{DataOffset: 8 + n}
	if err := h.decode(prefix[8 : 8+n]); err != nil {
		return nil, err
	}
	if err := h.checkLayout(fileSize - 8 - n); err != nil {
		return nil, err
	}
	h.index = make(map[string]int, len(h.Tensors))
	for i, t := range h.Tensors {
		h.index[t.Name] = i
	}
	return h, nil
}

// decode fills h.Tensors and h.Metadata from the JSON header.
func (h *SafetensorsHeader) decode(js []byte) error {
	err := walkObject(js, func(key string, value json.RawMessage) error {
		if key == metadataKey {
			m, err := decodeMetadata(value)
			h.Metadata = m
			return err
		}
		t, err := decodeTensorInfo(key, value)
		if err != nil {
			return err
		}
		h.Tensors = append(h.Tensors, t)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: header: %w", ErrInvalidSafetensors, err)
	}
	return nil
}

// walkObject calls visit for each member of the JSON object in data, in
// order. It walks tokens rather than unmarshalling into a map because
// encoding/json silently keeps the last of two duplicate keys.
func walkObject(data []byte, visit func(key string, value json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return badJSON(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return badJSON(err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("invalid JSON: object key %v is not a string", tok)
		}
		if seen[key] {
			return fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return fmt.Errorf("key %q: %w", key, badJSON(err))
		}
		if err := visit(key, value); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return badJSON(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: trailing data after the object")
	}
	return nil
}

// badJSON wraps a decoder error; io.EOF from the decoder inside an object
// means the JSON was cut short.
func badJSON(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// decodeMetadata decodes the "__metadata__" value: null or an object of
// strings.
func decodeMetadata(value json.RawMessage) (map[string]string, error) {
	if string(bytes.TrimSpace(value)) == "null" {
		return nil, nil
	}
	m := make(map[string]string)
	err := walkObject(value, func(key string, v json.RawMessage) error {
		if !bytes.HasPrefix(bytes.TrimSpace(v), []byte(`"`)) {
			return fmt.Errorf("value of key %q is not a string", key)
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("value of key %q: %w", key, err)
		}
		m[key] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", metadataKey, err)
	}
	return m, nil
}

// decodeTensorInfo decodes one tensor entry and checks it on its own; the
// layout of all tensors together is checked by checkLayout. Unknown fields
// are ignored, as the reference (serde) implementation does.
func decodeTensorInfo(name string, value json.RawMessage) (TensorInfo, error) {
	t := TensorInfo{Name: name}
	have := map[string]bool{}
	err := walkObject(value, func(key string, v json.RawMessage) error {
		have[key] = true
		var err error
		switch key {
		case "dtype":
			err = json.Unmarshal(v, &t.DType) // null leaves "", an unknown dtype
		case "shape":
			t.Shape, err = decodeInts(v)
		case "data_offsets":
			t.Begin, t.End, err = decodeOffsets(v)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	for _, key := range []string{"dtype", "shape", "data_offsets"} {
		if err == nil && !have[key] {
			err = fmt.Errorf("missing %s", key)
		}
	}
	if err == nil {
		err = checkTensorInfo(t)
	}
	if err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	return t, nil
}

// decodeInts decodes a JSON array of integers; null is not an array.
func decodeInts(v json.RawMessage) ([]int64, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(v), []byte("[")) {
		return nil, errors.New("not an array of integers")
	}
	var xs []int64
	if err := json.Unmarshal(v, &xs); err != nil {
		return nil, fmt.Errorf("not an array of integers: %w", err)
	}
	return xs, nil
}

// decodeOffsets decodes data_offsets: exactly two non-negative integers.
func decodeOffsets(v json.RawMessage) (begin, end int64, err error) {
	offs, err := decodeInts(v)
	switch {
	case err != nil:
		return 0, 0, err
	case len(offs) != 2:
		return 0, 0, fmt.Errorf("has %d values, want 2", len(offs))
	case offs[0] < 0 || offs[1] < 0:
		return 0, 0, fmt.Errorf("negative offset in [%d, %d]", offs[0], offs[1])
	}
	return offs[0], offs[1], nil
}

// checkTensorInfo checks that the dtype is known and that the byte range
// holds exactly numel elements of it.
func checkTensorInfo(t TensorInfo) error {
	size, ok := dtypeSizes[t.DType]
	if !ok {
		return fmt.Errorf("unknown dtype %q", t.DType)
	}
	numel, err := shapeNumel(t.Shape)
	if err != nil {
		return err
	}
	if numel > math.MaxInt64/size {
		return fmt.Errorf("shape %v of %s: byte size overflows int64", t.Shape, t.DType)
	}
	if t.Begin > t.End {
		return fmt.Errorf("data_offsets [%d, %d]: begin is after end", t.Begin, t.End)
	}
	if t.End-t.Begin != numel*size {
		return fmt.Errorf("data_offsets [%d, %d] span %d bytes but shape %v of %s needs %d",
			t.Begin, t.End, t.End-t.Begin, t.Shape, t.DType, numel*size)
	}
	return nil
}

// checkLayout sorts the tensors by offset and checks that they tile the data
// buffer of bufLen bytes exactly: inside it, no overlaps, no holes.
func (h *SafetensorsHeader) checkLayout(bufLen int64) error {
	for _, t := range h.Tensors {
		if t.End > bufLen {
			return fmt.Errorf("%w: tensor %q: data_offsets end %d is past the end of the %d-byte data buffer",
				ErrInvalidSafetensors, t.Name, t.End, bufLen)
		}
	}
	slices.SortFunc(h.Tensors, func(a, b TensorInfo) int {
		return cmp.Or(cmp.Compare(a.Begin, b.Begin), cmp.Compare(a.End, b.End), cmp.Compare(a.Name, b.Name))
	})
	var pos int64
	prev := ""
	for _, t := range h.Tensors {
		if t.Begin < pos {
			return fmt.Errorf("%w: tensors %q and %q overlap at byte %d", ErrInvalidSafetensors, prev, t.Name, t.Begin)
		}
		if t.Begin > pos {
			return fmt.Errorf("%w: hole of %d bytes at byte %d, before tensor %q", ErrInvalidSafetensors, t.Begin-pos, pos, t.Name)
		}
		pos, prev = t.End, t.Name
	}
	if pos != bufLen {
		return fmt.Errorf("%w: hole of %d bytes at the end of the data buffer, after byte %d", ErrInvalidSafetensors, bufLen-pos, pos)
	}
	return nil
}

// SafetensorsFile is an open safetensors file whose header has been read;
// tensors are read on demand. ReadFloat32 is safe for concurrent use.
type SafetensorsFile struct {
	path   string
	f      *os.File
	header *SafetensorsHeader
}

// OpenSafetensors opens path and reads and validates its header only.
func OpenSafetensors(path string) (*SafetensorsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open safetensors: %w", err)
	}
	h, err := readSafetensorsHeader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open safetensors %s: %w", path, err)
	}
	return &SafetensorsFile{path: path, f: f, header: h}, nil
}

func readSafetensorsHeader(f *os.File) (*SafetensorsHeader, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	first := make([]byte, min(st.Size(), 8))
	if _, err := f.ReadAt(first, 0); err != nil {
		return nil, err
	}
	n, err := headerLength(first, st.Size())
	if err != nil {
		return nil, err
	}
	prefix := make([]byte, 8+n)
	if _, err := f.ReadAt(prefix, 0); err != nil {
		return nil, fmt.Errorf("read %d-byte header: %w", n, err)
	}
	return ParseSafetensorsHeader(prefix, st.Size())
}

// Header returns the validated header of the file.
func (f *SafetensorsFile) Header() *SafetensorsHeader { return f.header }

// Close closes the underlying file.
func (f *SafetensorsFile) Close() error { return f.f.Close() }

// ReadFloat32 reads tensor name into dst, converting F32, F16, BF16 and F64
// elements to float32. len(dst) must equal the tensor's element count.
func (f *SafetensorsFile) ReadFloat32(name string, dst []float32) error {
	t, ok := f.header.Lookup(name)
	if !ok {
		return fmt.Errorf("read tensor %q from %s: no such tensor", name, f.path)
	}
	if int64(len(dst)) != t.Numel() {
		return fmt.Errorf("read tensor %q from %s: dst holds %d float32s but the tensor has %d elements",
			name, f.path, len(dst), t.Numel())
	}
	decode, size := float32Decoder(t.DType)
	if decode == nil {
		return fmt.Errorf("read tensor %q from %s: dtype %s cannot be read as float32", name, f.path, t.DType)
	}
	chunk := make([]byte, min(t.End-t.Begin, readChunkBytes/size*size))
	off := f.header.DataOffset + t.Begin
	for done := 0; done < len(dst); {
		k := min(len(dst)-done, len(chunk)/int(size))
		b := chunk[:k*int(size)]
		if _, err := f.f.ReadAt(b, off); err != nil {
			return fmt.Errorf("read tensor %q from %s at byte %d: %w", name, f.path, off, err)
		}
		decode(dst[done:done+k], b)
		done += k
		off += int64(len(b))
	}
	return nil
}

// float32Decoder returns the function that decodes little-endian elements
// of dtype into float32s, and the element size; nil for other dtypes.
func float32Decoder(dtype string) (func(dst []float32, src []byte), int64) {
	le := binary.LittleEndian
	switch dtype {
	case "F32":
		return func(dst []float32, src []byte) {
			for i := range dst {
				dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
			}
		}, 4
	case "F16":
		return func(dst []float32, src []byte) {
			for i := range dst {
				dst[i] = float16ToFloat32(le.Uint16(src[2*i:]))
			}
		}, 2
	case "BF16":
		return func(dst []float32, src []byte) {
			for i := range dst {
				dst[i] = bfloat16ToFloat32(le.Uint16(src[2*i:]))
			}
		}, 2
	case "F64":
		return func(dst []float32, src []byte) {
			for i := range dst {
				dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
			}
		}, 8
	}
	return nil, 0
}

// float16ToFloat32 widens an IEEE 754 binary16 value exactly, subnormals,
// infinities and NaN payloads included.
func float16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or NaN; the payload moves to the top of f32's mantissa
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal: rebias the exponent from 15 to 127
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal mant·2^-24 is normal in f32: shift the leading 1 up to the
	// implicit bit position, lowering the exponent once per shift.
	exp = 127 - 15 + 1
	for mant&0x400 == 0 {
		mant <<= 1
		exp--
	}
	return math.Float32frombits(sign | exp<<23 | (mant&0x3ff)<<13)
}

// bfloat16ToFloat32 widens a bfloat16, which is the top 16 bits of an f32.
func bfloat16ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}
