#include "base/reading.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace shardtune::base {

namespace {
// A slot is free (0), being filled or emptied (1), or names a file (2). Lock-free atomics only:
// the fault handler reads them.
std::atomic<int> g_state[kMaxReadingFiles];
char g_paths[kMaxReadingFiles][1024];
static_assert(std::atomic<int>::is_always_lock_free);

void release(int slot) {
  if (slot >= 0) g_state[slot].store(0, std::memory_order_release);
}
}  // namespace

ReadingFile::ReadingFile(const std::string& path) {
  for (int s = 0; s < kMaxReadingFiles; ++s) {
    int expected = 0;
    if (!g_state[s].compare_exchange_strong(expected, 1, std::memory_order_acquire)) continue;
    const size_t n = std::min(path.size(), sizeof(g_paths[s]) - 1);
    std::memcpy(g_paths[s], path.data(), n);
    g_paths[s][n] = '\0';
    g_state[s].store(2, std::memory_order_release);
    slot_ = s;
    return;
  }
}

ReadingFile::~ReadingFile() { release(slot_); }

ReadingFile& ReadingFile::operator=(ReadingFile&& other) noexcept {
  if (this != &other) {
    release(slot_);
    slot_ = other.slot_;
    other.slot_ = -1;
  }
  return *this;
}

int reading_file_count() {
  int n = 0;
  for (const auto& state : g_state) n += state.load(std::memory_order_acquire) == 2;
  return n;
}

int write_reading_files(int fd) {
  int written = 0;
  for (int s = 0; s < kMaxReadingFiles; ++s) {
    if (g_state[s].load(std::memory_order_acquire) != 2) continue;
    if (written++ > 0) (void)!::write(fd, ", ", 2);
    (void)!::write(fd, g_paths[s], std::strlen(g_paths[s]));
  }
  return written;
}

}  // namespace shardtune::base
