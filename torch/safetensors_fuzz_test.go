package torch

import (
	"encoding/binary"
	"testing"
)

// FuzzParseSafetensorsHeader feeds the parser either raw file bytes
// (framed == false) or a JSON header that the target frames with its length,
// which lets the fuzzer reach the JSON checks instead of stalling on a
// random length field. dataLen more bytes of data follow the prefix.
func FuzzParseSafetensorsHeader(f *testing.F) {
	valid := []string{
		`{}`,
		`{"__metadata__":{"format":"pt"}}`,
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`,
		`{"a":{"dtype":"F16","shape":[],"data_offsets":[0,2]},"b":{"dtype":"BF16","shape":[0,3],"data_offsets":[2,2]}}`,
		`{"__metadata__":null,"x":{"dtype":"BOOL","shape":[1,1,3],"data_offsets":[0,3]},"y":{"dtype":"I64","shape":[1],"data_offsets":[3,11]}}`,
	}
	invalid := []string{
		``, `[]`, `{"a":5}`, `{} x`,
		`{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}`,
		`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`,
		`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`,
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}`,
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`,
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`,
		`{"__metadata__":{"k":1}}`,
	}
	for _, h := range valid {
		f.Add([]byte(h), uint16(16), true)
		f.Add(frame([]byte(h)), uint16(11), false)
	}
	for _, h := range invalid {
		f.Add([]byte(h), uint16(8), true)
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint16(0), false)
	f.Add([]byte{1, 2, 3}, uint16(0), false)

	f.Fuzz(func(t *testing.T, data []byte, dataLen uint16, framed bool) {
		if framed {
			data = frame(data)
		}
		fileSize := int64(len(data)) + int64(dataLen)
		h, err := ParseSafetensorsHeader(data, fileSize)
		if err != nil {
			return
		}
		checkHeaderInvariants(t, h, fileSize)
	})
}

func frame(header []byte) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, uint64(len(header))), header...)
}

// checkHeaderInvariants asserts what a reader relies on after a successful
// parse: every tensor lies inside the buffer, sized by its shape and dtype,
// and the tensors tile the buffer in order without overlapping.
func checkHeaderInvariants(t *testing.T, h *SafetensorsHeader, fileSize int64) {
	if h.DataOffset < 8 || h.DataOffset > fileSize {
		t.Fatalf("DataOffset %d outside a %d-byte file", h.DataOffset, fileSize)
	}
	bufLen := fileSize - h.DataOffset
	var pos int64
	for _, ti := range h.Tensors {
		size, ok := dtypeSizes[ti.DType]
		if !ok {
			t.Fatalf("tensor %q has unknown dtype %q", ti.Name, ti.DType)
		}
		if ti.Numel() < 0 || ti.End-ti.Begin != ti.Numel()*size {
			t.Fatalf("tensor %q: %d bytes for %d elements of %s", ti.Name, ti.End-ti.Begin, ti.Numel(), ti.DType)
		}
		if ti.Begin != pos || ti.End > bufLen {
			t.Fatalf("tensor %q at [%d, %d] after byte %d of a %d-byte buffer", ti.Name, ti.Begin, ti.End, pos, bufLen)
		}
		pos = ti.End
		if got, ok := h.Lookup(ti.Name); !ok || got.Begin != ti.Begin {
			t.Fatalf("Lookup(%q) = %+v, %v", ti.Name, got, ok)
		}
	}
	if pos != bufLen {
		t.Fatalf("tensors end at %d of a %d-byte buffer", pos, bufLen)
	}
}
