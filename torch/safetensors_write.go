package torch

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

// NamedTensor is a float32 tensor to write with WriteSafetensors.
type NamedTensor struct {
	Name  string
	Shape []int64
	Data  []float32
}

// WriteSafetensors atomically writes tensors to path as F32, in the given
// order with contiguous offsets, with metadata as "__metadata__" when it is
// non-empty. Like the reference writer, it pads the header with spaces so the
// data buffer starts at a multiple of 8.
func WriteSafetensors(path string, tensors []NamedTensor, metadata map[string]string) error {
	header, err := encodeSafetensorsHeader(tensors, metadata)
	if err != nil {
		return fmt.Errorf("write safetensors %s: %w", path, err)
	}
	return WriteFileAtomicFunc(path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, writeChunkBytes)
		if err := binary.Write(bw, binary.LittleEndian, uint64(len(header))); err != nil {
			return err
		}
		if _, err := bw.Write(header); err != nil {
			return err
		}
		chunk := make([]byte, writeChunkBytes)
		for _, t := range tensors {
			if err := writeFloat32s(bw, t.Data, chunk); err != nil {
				return fmt.Errorf("tensor %q: %w", t.Name, err)
			}
		}
		return bw.Flush()
	})
}

// writeFloat32s encodes data little-endian through chunk into w.
func writeFloat32s(w io.Writer, data []float32, chunk []byte) error {
	for len(data) > 0 {
		k := min(len(data), len(chunk)/4)
		for i, x := range data[:k] {
			binary.LittleEndian.PutUint32(chunk[4*i:], math.Float32bits(x))
		}
		if _, err := w.Write(chunk[:4*k]); err != nil {
			return err
		}
		data = data[k:]
	}
	return nil
}

// encodeSafetensorsHeader builds the padded JSON header, in the reference
// writer's order: metadata first, then tensors by offset.
func encodeSafetensorsHeader(tensors []NamedTensor, metadata map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(metadata) > 0 {
		for k, v := range metadata {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, fmt.Errorf("metadata %q: not valid UTF-8", k)
			}
		}
		m, err := json.Marshal(metadata) // sorts the keys
		if err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
		b.WriteString(`"` + metadataKey + `":`)
		b.Write(m)
	}
	seen := make(map[string]bool, len(tensors))
	var off int64
	for i, t := range tensors {
		if err := checkNamedTensor(t, seen); err != nil {
			return nil, fmt.Errorf("tensor %d %q: %w", i, t.Name, err)
		}
		name, _ := json.Marshal(t.Name)
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `%s:{"dtype":"F32","shape":[`, name)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(d, 10))
		}
		end := off + 4*int64(len(t.Data))
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes(), nil
}

// checkNamedTensor checks that t can be written and read back as it is.
func checkNamedTensor(t NamedTensor, seen map[string]bool) error {
	switch {
	case t.Name == metadataKey:
		return fmt.Errorf("name %s is reserved", metadataKey)
	case !utf8.ValidString(t.Name):
		return errors.New("name is not valid UTF-8")
	case seen[t.Name]:
		return errors.New("duplicate name")
	}
	seen[t.Name] = true
	numel, err := shapeNumel(t.Shape)
	if err != nil {
		return err
	}
	if numel != int64(len(t.Data)) {
		return fmt.Errorf("shape %v has %d elements but data has %d", t.Shape, numel, len(t.Data))
	}
	return nil
}
