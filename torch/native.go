package torch

/*
#cgo CFLAGS: -I${SRCDIR}/../native
#cgo LDFLAGS: -L${SRCDIR}/../bin -ldtorch -Wl,-rpath,$ORIGIN -Wl,-rpath,${SRCDIR}/../bin
#include <stdlib.h>
#include "dtorch.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// abiVersion is the dtorch.h ABI this package was written against.
const abiVersion = 5

var (
	initOnce = sync.OnceValue(func() error {
		if v := int(C.dt_abi_version()); v != abiVersion {
			return fmt.Errorf("libdtorch ABI version %d, dtrain expects %d: rebuild native/ (./build.sh)", v, abiVersion)
		}
		// Debian's libtorch starts with one intra-op thread; use every core
		// the process may run on unless SetThreads chose otherwise.
		if !threadsSet.Load() {
			return cerr(C.dt_set_num_threads(C.int32_t(runtime.NumCPU())))
		}
		return nil
	})
	threadsSet atomic.Bool
)

// ready checks the loaded library once and applies the default settings.
func ready() error { return initOnce() }

// cerr turns a dtorch error string into a Go error and frees it.
func cerr(s *C.char) error {
	if s == nil {
		return nil
	}
	defer C.dt_free(unsafe.Pointer(s))
	return errors.New(C.GoString(s))
}

// SetThreads sets libtorch's intra-op thread count and OpenBLAS's (which
// keeps its own pool). The default is every core the process may use.
// Call it before any other function of this package: libtorch keeps the
// count of its OpenMP pool per calling OS thread, taken when the thread
// first runs parallel work, so threads that ran some before keep the count
// they had.
func SetThreads(n int) error {
	if err := cerr(C.dt_set_num_threads(C.int32_t(n))); err != nil {
		return err
	}
	threadsSet.Store(true)
	return nil
}

// Threads reports libtorch's intra-op thread count.
func Threads() int {
	if err := ready(); err != nil {
		return 0
	}
	return int(C.dt_get_num_threads())
}

// BuildInfo describes the loaded libdtorch: libtorch version and devices.
func BuildInfo() string { return C.GoString(C.dt_build_info()) }

// CPUCache counts the large blocks (1 MiB and up) of libdtorch's caching
// CPU allocator: mapped once, kept when libtorch frees them, and reused by
// the next request of about the same size, so a training step's tensors
// cost no page faults after the first step.
type CPUCache struct {
	Installed    bool  // false under DTRAIN_CPU_ALLOC=malloc: libtorch's own allocator
	MappedBytes  int64 // in use or kept
	CachedBytes  int64 // kept unused
	Hits, Misses int64 // requests served from kept blocks, and by new mappings
}

// CPUCacheStats reads the caching CPU allocator's counters.
func CPUCacheStats() (CPUCache, error) {
	if err := ready(); err != nil {
		return CPUCache{}, err
	}
	var mapped, cached, hits, misses C.int64_t
	on := C.dt_cpu_cache(&mapped, &cached, &hits, &misses)
	return CPUCache{Installed: on != 0, MappedBytes: int64(mapped), CachedBytes: int64(cached), Hits: int64(hits), Misses: int64(misses)}, nil
}

// CUDADevices is the number of CUDA devices the loaded libdtorch can use.
func CUDADevices() int { return int(C.dt_cuda_device_count()) }

// MatmulGFLOPS times an n×n matmul on dev in precision p: the peak that
// model FLOP utilisation is measured against.
func MatmulGFLOPS(dev Device, p Precision, n, iters int) (float64, error) {
	if err := ready(); err != nil {
		return 0, err
	}
	cs, cd := C.CString(dev.String()), C.CString(p.dtype())
	defer C.free(unsafe.Pointer(cs))
	defer C.free(unsafe.Pointer(cd))
	var g C.double
	if err := cerr(C.dt_matmul_gflops(cs, cd, C.int64_t(n), C.int32_t(iters), &g)); err != nil {
		return 0, fmt.Errorf("matmul benchmark: %w", err)
	}
	return float64(g), nil
}

// f32 and i32 return C pointers to the first element of a Go slice (nil
// when empty). The C side only uses them for the duration of the call.
func f32(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

func i32(s []int32) *C.int32_t {
	if len(s) == 0 {
		return nil
	}
	return (*C.int32_t)(unsafe.Pointer(&s[0]))
}
