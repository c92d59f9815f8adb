#include "io/checkpoint/durable.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/errors.h"

namespace fs = std::filesystem;

namespace shardtune::io {

bool fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
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

void atomic_write_text(const std::string& target, const std::string& content) {
  const std::string tmp = target + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    out.flush();
    if (!out) throw UserError(tmp + ": cannot write");
  }
  fsync_path(tmp, false);
  durable_rename(tmp, target);
}

}  // namespace shardtune::io
