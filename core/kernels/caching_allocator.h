// A caching CPU allocator for LibTorch tensors: large blocks freed by one training step are kept
// and handed to the next step's tensors of the same size class, instead of going back to the
// operating system and being faulted in, page by page, again.
//
// Why (docs/benchmarks-profile.md): glibc serves allocations above its mmap threshold (at most
// 32 MiB, often less) with a fresh mmap and unmaps them on free, so every step re-faults its
// logits, attention scores, activations and gradients. On the benchmark VM a page fault costs
// ~18 us (a 32 MiB log_softmax: 150 ms of CPU instead of 8 ms), which made page faults the
// largest single item of a step's profile. Blocks are plain 4 KiB pages: advising transparent
// huge pages (MADV_HUGEPAGE) was tried and made bf16 steps slower.
//
// Policy: requests below 256 KiB go to LibTorch's default allocator unchanged. Larger ones are
// rounded up to a size class (64 KiB steps below 8 MiB, 2 MiB steps above) and served from a
// free list of that exact class, else by a new anonymous mmap. Freed blocks return to their
// list while the cache holds less than the cap (default: a quarter of physical memory, at most
// 8 GiB); beyond it they are unmapped. If mmap fails, the whole cache is released and the mmap
// retried once before LibTorch reports out-of-memory. Thread-safe (one mutex).
// A training loop allocates the same sizes every step, so after the first step nearly every
// large request is a reuse; memory held never exceeds one step's peak plus the cached free
// blocks (bounded by the cap).
#pragma once

#include <cstdint>

namespace shardtune::kernels {

struct CpuCacheStats {
  int64_t in_use_bytes = 0;     // large blocks currently owned by tensors
  int64_t cached_bytes = 0;     // large blocks free in the cache
  int64_t peak_bytes = 0;       // max of in_use + cached since install
  int64_t fresh_blocks = 0;     // large requests served by a new mmap
  int64_t reused_blocks = 0;    // large requests served from the cache
};

// Makes the caching allocator LibTorch's CPU allocator for tensors created from now on
// (tensors that exist keep their own deleters). cap_bytes < 0: the default cap. Calling it again
// installs nothing new; a cap >= 0 then replaces the cap (blocks already cached stay).
void install_caching_cpu_allocator(int64_t cap_bytes = -1);
// The default cap: a quarter of physical memory, at most 8 GiB (processes sharing a node divide it).
int64_t default_cpu_cache_cap();
bool caching_cpu_allocator_installed();
CpuCacheStats caching_cpu_allocator_stats();
// Unmaps every cached free block (blocks owned by tensors are untouched).
void release_cached_cpu_memory();

}  // namespace shardtune::kernels
