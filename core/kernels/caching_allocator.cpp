#include "core/kernels/caching_allocator.h"

#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace shardtune::kernels {

namespace {

constexpr size_t kMinCached = 256 << 10;
constexpr size_t kCoarseFrom = 8 << 20;
constexpr size_t kSmallStep = 64 << 10;
constexpr size_t kCoarseStep = 2 << 20;

size_t size_class(size_t n) {
  const size_t step = n >= kCoarseFrom ? kCoarseStep : kSmallStep;
  return (n + step - 1) / step * step;
}

class CachingCpuAllocator;
CachingCpuAllocator* g_allocator = nullptr;  // never destroyed (tensors freed late still find it)
std::mutex g_install_mu;
void free_ptr(void* p);

// Data pointers are their own context (context == data), which LibTorch's raw_allocate requires
// (oneDNN allocates its scratch buffers through it): the deleter finds a block's size class in
// `live_`, and pointers it does not know came from the fallback allocator.
class CachingCpuAllocator final : public c10::Allocator {
 public:
  CachingCpuAllocator(c10::Allocator* fallback, int64_t cap) : fallback_(fallback), cap_(cap) {}

  c10::DataPtr allocate(size_t n) const override {
    auto* self = const_cast<CachingCpuAllocator*>(this);
    void* p = n < kMinCached ? fallback_->raw_allocate(n) : self->take(size_class(n));
    return {p, p, &free_ptr, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &free_ptr; }

  void give_back(void* p) {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {
      lock.unlock();
      fallback_->raw_deallocate(p);
      return;
    }
    const size_t bytes = it->second;
    live_.erase(it);
    stats_.in_use_bytes -= static_cast<int64_t>(bytes);
    if (stats_.cached_bytes + static_cast<int64_t>(bytes) > cap_) {
      munmap(p, bytes);
      return;
    }
    stats_.cached_bytes += static_cast<int64_t>(bytes);
    free_[bytes].push_back(p);
  }

  CpuCacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [bytes, blocks] : free_) {
      for (void* p : blocks) munmap(p, bytes);
      blocks.clear();
    }
    stats_.cached_bytes = 0;
  }
  void set_cap(int64_t cap) {
    std::lock_guard<std::mutex> lock(mu_);
    cap_ = cap;
  }

 private:
  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        stats_.cached_bytes -= static_cast<int64_t>(bytes);
        stats_.in_use_bytes += static_cast<int64_t>(bytes);
        ++stats_.reused_blocks;
        live_[p] = bytes;
        return p;
      }
    }
    void* p = map(bytes);
    if (p == nullptr) {
      release();
      p = map(bytes);
    }
    TORCH_CHECK(p != nullptr, "shardtune caching CPU allocator: out of memory allocating ",
                bytes, " bytes");
    std::lock_guard<std::mutex> lock(mu_);
    stats_.in_use_bytes += static_cast<int64_t>(bytes);
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.in_use_bytes + stats_.cached_bytes);
    ++stats_.fresh_blocks;
    live_[p] = bytes;
    return p;
  }

  static void* map(size_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    // No MADV_HUGEPAGE: advised huge pages made bf16 steps 10-25% slower and erratic on the
    // benchmark VM (docs/benchmarks-profile.md), and reused blocks fault only once anyway.
    return p == MAP_FAILED ? nullptr : p;
  }

  c10::Allocator* fallback_;
  int64_t cap_;
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // size class -> free blocks
  std::unordered_map<void*, size_t> live_;               // blocks owned by tensors
  CpuCacheStats stats_;
};

void free_ptr(void* p) {
  if (p != nullptr) g_allocator->give_back(p);
}

}  // namespace

int64_t default_cpu_cache_cap() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  const int64_t quarter = pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page / 4 : 0;
  return std::min<int64_t>(quarter > 0 ? quarter : (int64_t{1} << 30), int64_t{8} << 30);
}

void install_caching_cpu_allocator(int64_t cap_bytes) {
  std::lock_guard<std::mutex> lock(g_install_mu);
  if (g_allocator != nullptr) {
    if (cap_bytes >= 0) g_allocator->set_cap(cap_bytes);
    return;
  }
  g_allocator = new CachingCpuAllocator(c10::GetDefaultCPUAllocator(),
                                        cap_bytes >= 0 ? cap_bytes : default_cpu_cache_cap());
  c10::SetCPUAllocator(g_allocator, /*priority=*/1);
}

bool caching_cpu_allocator_installed() {
  std::lock_guard<std::mutex> lock(g_install_mu);
  return g_allocator != nullptr;
}

CpuCacheStats caching_cpu_allocator_stats() {
  return g_allocator ? g_allocator->stats() : CpuCacheStats{};
}

void release_cached_cpu_memory() {
  if (g_allocator) g_allocator->release();
}

}  // namespace shardtune::kernels
