// cpualloc.h: the CPU allocator libdtorch gives libtorch (cpualloc.cpp).
#pragma once

#include <cstdint>

namespace dtorch {

// CPUCacheStats count the large blocks of the caching CPU allocator:
// bytes mapped in all (in use or kept), bytes kept unused, and requests
// served from kept blocks (hits) or by mapping new ones (misses).
struct CPUCacheStats {
  int64_t mapped_bytes, cached_bytes, hits, misses;
};

// CPUCacheInstalled reports whether the caching allocator serves libtorch's
// CPU tensors (false under DTRAIN_CPU_ALLOC=malloc).
bool CPUCacheInstalled();

CPUCacheStats GetCPUCacheStats();

}  // namespace dtorch
