package torch

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/cpu"
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

// Precision is the dtype a model runs its matmuls and attention in. The
// parameters, gradients, optimizer state, LayerNorms, softmax and loss stay
// float32 either way.
type Precision string

const (
	// FP32 computes everything in float32.
	FP32 Precision = "fp32"
	// BF16 is mixed precision: matmuls and attention in bfloat16 over
	// float32 master weights, as torch.autocast(dtype=torch.bfloat16).
	BF16 Precision = "bf16"
)

// ParsePrecision accepts "fp32", "bf16" and "auto" (or ""), which is bf16
// on a CUDA device and on a CPU with bfloat16 dot-product instructions (AMX
// or AVX512-BF16), and fp32 on other CPUs, where libtorch emulates bfloat16
// GEMMs more slowly than it runs float32 ones.
func ParsePrecision(s string, dev Device) (Precision, error) {
	switch p := Precision(strings.TrimSpace(strings.ToLower(s))); p {
	case FP32, BF16:
		return p, nil
	case "", "auto":
		return autoPrecision(dev, CPUHasBF16()), nil
	}
	return "", fmt.Errorf("precision %q: want auto, fp32 or bf16", s)
}

// autoPrecision is what "auto" means on dev, given whether the CPU
// multiplies bfloat16 natively: a function of its arguments, so tests cover
// both kinds of CPU on either.
func autoPrecision(dev Device, cpuBF16 bool) Precision {
	if dev.CUDA || cpuBF16 {
		return BF16
	}
	return FP32
}

// dtype is libdtorch's name for the compute dtype.
func (p Precision) dtype() string {
	if p == BF16 {
		return "bfloat16"
	}
	return "float32"
}

// CPUHasBF16 reports whether this CPU multiplies bfloat16 natively: oneDNN,
// which libtorch's CPU GEMMs use for bfloat16, then runs them faster than
// float32 (on a Sapphire Rapids core with AMX: 2048² at 3–5× the float32
// rate, training 3× faster). It asks x86's CPUID only; cpu.X86 is all false
// on other architectures, so on an Arm CPU (a GH200's Grace) auto is fp32,
// never a bfloat16 path dtrain has not measured there. GODEBUG=
// cpu.avx512bf16=off,cpu.amxbf16=off makes an x86 CPU answer false, as a
// Zen 3 or a Skylake does.
func CPUHasBF16() bool { return cpu.X86.HasAMXBF16 || cpu.X86.HasAVX512BF16 }
