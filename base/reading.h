#pragma once
// The files being read, for the fault report (launch/signals.h, install_fault_report): libhdf5
// 1.10 can fault inside its own code on some crafted files, and a memory-mapped safetensors file
// that shrinks while mapped raises SIGBUS on the next read. A reader holds a ReadingFile for as
// long as it reads (or maps) a file; a fault while any is held is reported as one line naming it,
// with exit code 2, instead of a crash with no name. Up to kMaxReadingFiles at once (more are not
// named); paths are cut at 1,023 bytes.

#include <string>

namespace shardtune::base {

inline constexpr int kMaxReadingFiles = 16;

class ReadingFile {
 public:
  ReadingFile() = default;
  explicit ReadingFile(const std::string& path);
  ~ReadingFile();
  ReadingFile(ReadingFile&& other) noexcept : slot_(other.slot_) { other.slot_ = -1; }
  ReadingFile& operator=(ReadingFile&& other) noexcept;
  ReadingFile(const ReadingFile&) = delete;
  ReadingFile& operator=(const ReadingFile&) = delete;

 private:
  int slot_ = -1;
};

// Async-signal-safe: how many files are being read.
int reading_file_count();
// Async-signal-safe: writes the paths of the files being read to `fd`, separated by ", ", and
// returns how many it wrote (0: none is being read).
int write_reading_files(int fd);

}  // namespace shardtune::base
