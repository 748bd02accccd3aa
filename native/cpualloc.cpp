// cpualloc.cpp: libtorch's CPU allocator, replaced by one that keeps the
// large blocks a training step frees and hands them to the next step.
//
// libtorch's default CPU allocator is posix_memalign, and glibc serves every
// block over its mmap threshold (32 MiB at most) with a fresh mmap and
// returns it with munmap. A GPT-2 124M step at seq 1024 frees and allocates
// gigabytes of such blocks (attention scores are 48 MiB a layer in float32),
// so the kernel zeroes and maps every page of them again, every step: with
// 2 threads, a third of the step's time went to page faults and
// clear_page. Here blocks of kMinCached bytes or more are mapped once,
// kept when freed (up to a cap on what is kept unused) and reused for a
// request of the same size or up to 1/8 smaller; smaller blocks go to
// libtorch's own c10::alloc_cpu, as before.
//
// DTRAIN_CPU_ALLOC=malloc at start keeps libtorch's allocator (to compare).
#include "cpualloc.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>

namespace dtorch {
namespace {

constexpr size_t kMinCached = size_t(1) << 20;  // smaller: c10::alloc_cpu
constexpr size_t kGrain = size_t(64) << 10;     // sizes are rounded up to this

class CachingCPUAllocator final : public c10::Allocator {
 public:
  CachingCPUAllocator() {
    // Keep at most a quarter of the machine's memory mapped and unused,
    // and never more than 16 GiB.
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t phys = pages > 0 && page > 0 ? size_t(pages) * size_t(page) : size_t(8) << 30;
    limit_ = std::min(phys / 4, size_t(16) << 30);
  }

  c10::DataPtr allocate(size_t n) const override {
    void *p = n < kMinCached ? c10::alloc_cpu(n) : Take(n);
    return {p, p, &Delete, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &Delete; }

  CPUCacheStats Stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  static void Delete(void *p);

  void *Take(size_t n) const {
    size_t size = (n + kGrain - 1) / kGrain * kGrain;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // The smallest free block that fits, unless it wastes more than 1/8.
      auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first - it->first / 8 <= size) {
        void *p = it->second;
        size_t got = it->first;
        free_.erase(it);
        stats_.cached_bytes -= int64_t(got);
        stats_.hits++;
        return p;
      }
      stats_.misses++;
    }
    void *p = Map(size);
    if (p == nullptr) {
      Trim(0);  // out of memory: give back everything kept, and try again
      p = Map(size);
    }
    if (p == nullptr) throw std::bad_alloc();
    std::lock_guard<std::mutex> lock(mu_);
    live_[p] = size;
    stats_.mapped_bytes += int64_t(size);
    return p;
  }

  static void *Map(size_t size) {
    void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    // Large pages where the kernel gives them on request: fewer faults and
    // TLB misses on tensors of tens of megabytes.
    madvise(p, size, MADV_HUGEPAGE);
    return p;
  }

  // Give puts a block back; false when p is not one of this allocator's.
  bool Give(void *p) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return false;
    free_.emplace(it->second, p);
    stats_.cached_bytes += int64_t(it->second);
    TrimLocked(limit_);
    return true;
  }

  void Trim(size_t keep) const {
    std::lock_guard<std::mutex> lock(mu_);
    TrimLocked(keep);
  }

  // TrimLocked unmaps free blocks, largest first, until at most keep bytes
  // are kept unused.
  void TrimLocked(size_t keep) const {
    while (size_t(stats_.cached_bytes) > keep && !free_.empty()) {
      auto it = std::prev(free_.end());
      munmap(it->second, it->first);
      live_.erase(it->second);
      stats_.cached_bytes -= int64_t(it->first);
      stats_.mapped_bytes -= int64_t(it->first);
      free_.erase(it);
    }
  }

  size_t limit_;
  mutable std::mutex mu_;
  mutable std::multimap<size_t, void *> free_;     // size → block kept for reuse
  mutable std::unordered_map<void *, size_t> live_;  // every mapped block, free or not → size
  mutable CPUCacheStats stats_{};
};

CachingCPUAllocator *installed = nullptr;

void CachingCPUAllocator::Delete(void *p) {
  if (p == nullptr) return;
  if (installed == nullptr || !installed->Give(p)) c10::free_cpu(p);
}

// Install replaces libtorch's CPU allocator when the library loads, before
// any tensor is made, unless DTRAIN_CPU_ALLOC=malloc. The allocator lives
// as long as the process: tensors may outlive every static destructor.
bool Install() {
  const char *env = std::getenv("DTRAIN_CPU_ALLOC");
  if (env != nullptr && std::strcmp(env, "malloc") == 0) return false;
  installed = new CachingCPUAllocator();
  c10::SetCPUAllocator(installed, /*priority=*/1);
  return true;
}

const bool kInstalled = Install();

}  // namespace

bool CPUCacheInstalled() { return kInstalled; }

CPUCacheStats GetCPUCacheStats() { return installed ? installed->Stats() : CPUCacheStats{}; }

}  // namespace dtorch
