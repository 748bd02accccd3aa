package torch

import (
	"fmt"
	"strconv"
	"strings"
)

// Device is where a model's tensors live: the CPU or one CUDA GPU. The zero
// value is the CPU.
type Device struct {
	CUDA  bool
	Index int // CUDA device index
}

// CPU is the host device.
var CPU = Device{}

// ParseDevice accepts "cpu", "cuda" (device 0) and "cuda:N".
func ParseDevice(s string) (Device, error) {
	switch s = strings.TrimSpace(strings.ToLower(s)); {
	case s == "cpu" || s == "":
		return CPU, nil
	case s == "cuda":
		return Device{CUDA: true}, nil
	case strings.HasPrefix(s, "cuda:"):
		n, err := strconv.Atoi(s[len("cuda:"):])
		if err != nil || n < 0 {
			return Device{}, fmt.Errorf("device %q: want cpu, cuda or cuda:N", s)
		}
		return Device{CUDA: true, Index: n}, nil
	}
	return Device{}, fmt.Errorf("device %q: want cpu, cuda or cuda:N", s)
}

// String is the libtorch spelling of the device.
func (d Device) String() string {
	if !d.CUDA {
		return "cpu"
	}
	return fmt.Sprintf("cuda:%d", d.Index)
}
