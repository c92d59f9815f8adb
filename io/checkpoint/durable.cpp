#include "io/checkpoint/durable.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "base/errors.h"

namespace fs = std::filesystem;

namespace shardtune::io {

bool fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

void durable_rename(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) throw UserError(to + ": cannot replace (" + ec.message() + ")");
  fsync_path(fs::path(to).parent_path().string(), true);
}

std::string unique_suffix() {
  static thread_local std::mt19937_64 gen{std::random_device{}() ^
                                          (static_cast<uint64_t>(::getpid()) << 32)};
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(gen()));
  return hex;
}

int create_exclusive(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
}

void atomic_write_text(const std::string& target, const std::string& content) {
  const std::string tmp = target + "." + unique_suffix() + ".tmp";
  const int fd = create_exclusive(tmp);
  if (fd < 0) throw UserError(tmp + ": cannot create (" + std::strerror(errno) + ")");
  size_t done = 0;
  bool ok = true;
  while (ok && done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    ::unlink(tmp.c_str());
    throw UserError(tmp + ": cannot write (disk full?)");
  }
  try {
    durable_rename(tmp, target);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

}  // namespace shardtune::io
