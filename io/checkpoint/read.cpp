// The read protocol: not collective. Every rank opens the file read-only with the serial driver;
// for each tensor it reads the saved pieces that overlap its own slice under the current layout,
// verifies each piece's checksum and copies its slice out (DCP-style resharding: at most one extra
// piece per boundary is read). Nothing is written when anything fails.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <type_traits>

#include "base/errors.h"
#include "io/checkpoint.h"
#include "io/checkpoint/dtypes.h"
#include "io/checkpoint/hdf5.h"
#include "io/checkpoint/pieces.h"
#include "io/checkpoint/verify.h"

namespace fs = std::filesystem;

namespace shardtune::io {

namespace {

using h5::Handle;

std::string shape_str(const std::vector<int64_t>& s) { return c10::str(c10::IntArrayRef(s)); }

// One stored dataset opened for reading, with its validated piece geometry and checksums.
struct StoredTensor {
  Handle ds{-1, H5Dclose};
  Handle space{-1, H5Sclose};
  std::vector<int64_t> shape;
  Pieces saved;
  std::vector<uint64_t> sums;  // per piece; empty for format 1
  bool format1 = false;        // the whole tensor's `fnv1a64` instead
  uint64_t fnv1a64 = 0;
};

StoredTensor open_stored(const OpenedCheckpoint& ck, const ShardedTensor& item,
                         const std::string& where) {
  require(h5::path_exists(ck.file.get(), item.path), where + " is missing");
  StoredTensor st;
  st.ds = Handle(H5Dopen2(ck.file.get(), item.path.c_str(), H5P_DEFAULT), H5Dclose);
  require(st.ds.ok(), where + " cannot be opened");
  st.space = Handle(H5Dget_space(st.ds.get()), H5Sclose);
  require(st.space.ok(), where + " has an unreadable dataspace");
  st.shape = h5::dataset_shape(st.ds.get());
  const auto& global = item.spec.global_shape;
  require(st.shape == global,
          where + " has shape " + shape_str(st.shape) + ", expected " + shape_str(global));
  Handle ftype(H5Dget_type(st.ds.get()), H5Tclose);
  const std::string stored = h5::type_name(ftype.get());
  const std::string wanted = h5::dtype_name(item.local.scalar_type());
  require(stored == wanted, where + " has dtype " + stored + ", expected " + wanted);
  // The description open_checkpoint validated (and, format 3, checksummed).
  StoredMeta meta = read_stored_meta(st.ds.get(), item.path, where, ck.info.format_version);
  st.saved = meta.pieces;
  st.sums = std::move(meta.meta.sums);
  st.format1 = meta.format1;
  st.fnv1a64 = meta.fnv1a64;
  return st;
}

// Reads saved piece p into `buf` (the piece's shape, contiguous) and verifies its checksum.
void read_piece(StoredTensor& st, int64_t p, torch::Tensor& buf, const std::string& where) {
  if (buf.numel() > 0) {
    Handle mspace = h5::simple_space(buf.sizes().vec());
    require(h5::select(st.space.get(), piece_hyperslab(st.shape, st.saved, p)) &&
                H5Dread(st.ds.get(), h5::file_type(buf.scalar_type()), mspace.get(),
                        st.space.get(), H5P_DEFAULT, buf.data_ptr()) >= 0,
            where + " cannot be read (truncated or corrupted file?)");
  }
  if (st.format1) {
    require(format1_checksum(buf) == st.fnv1a64,
            where + " fails its checksum (the file is corrupted)");
    return;
  }
  require(tensor_checksum(buf) == st.sums[static_cast<size_t>(p)],
          where + " fails its checksum" +
              (st.saved.count > 1 ? " (piece " + std::to_string(p) + ")" : std::string()) +
              ": the file is corrupted");
}

void load_one(const OpenedCheckpoint& ck, const std::string& name, ShardedTensor& item) {
  const std::string where = name + ": tensor " + item.path;
  StoredTensor st = open_stored(ck, item, where);
  const auto& s = item.spec;
  const auto opts = torch::TensorOptions().dtype(item.local.scalar_type());
  const PieceRange range = overlapping(st.saved, s);
  if (reads_one_piece(st.saved, s) && item.local.device().is_cpu()) {
    // Same layout (or replicated both times): straight into place.
    auto dst = core::real_part(item.local, s);
    auto buf = dst.is_contiguous()
                   ? dst
                   : torch::empty(piece_shape(st.shape, st.saved, range.first), opts);
    read_piece(st, range.first, buf, where);
    if (!buf.is_same(dst)) dst.copy_(buf);
    if (s.sharded() && s.length < s.chunk) {  // vocabulary padding (parts == 1)
      item.local.narrow(s.dim, s.length, s.chunk - s.length).zero_();
    }
    return;
  }
  // Another layout: assemble the overlapping pieces in a global-shape buffer, keep this slice.
  auto full = torch::empty(st.shape, opts);
  for (int64_t p = range.first; p < range.last; ++p) {
    if (st.saved.dim < 0) {
      read_piece(st, p, full, where);
      continue;
    }
    auto buf = torch::empty(piece_shape(st.shape, st.saved, p), opts);
    read_piece(st, p, buf, where);
    place_piece(full, buf, st.saved, p);
  }
  if (item.local.device().is_cpu()) {
    core::assign_from_full(item.local, full, s);
  } else {
    auto cpu = item.local.to(torch::kCPU);
    core::assign_from_full(cpu, full, s);
    item.local.copy_(cpu);
  }
}

}  // namespace

namespace {

// Reads the pointer file `latest` of `dir` safely: not a symbolic link, a FIFO or anything but a
// small regular file; one name (trailing whitespace tolerated) of a plain file in `dir` itself.
std::string read_latest(const std::string& dir) {
  const std::string latest = (fs::path(dir) / kLatestPointer).string();
  const int fd = ::open(latest.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    require(err != ENOENT, dir + ": directory has no 'latest' checkpoint pointer");
    require(err != ELOOP, latest + " is a symbolic link (ShardTune writes a plain file; refusing)");
    throw UserError(latest + ": cannot open (" + std::strerror(err) + ")");
  }
  struct stat st {};
  std::string text(4097, '\0');
  ssize_t got = -1;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) got = ::read(fd, text.data(), text.size());
  ::close(fd);
  require(S_ISREG(st.st_mode), latest + " is not a regular file");
  require(got >= 0, latest + ": cannot read");
  require(got <= 4096, latest + " is larger than 4 KiB: not a checkpoint pointer");
  text.resize(static_cast<size_t>(got));
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  require(!text.empty(), latest + ": empty checkpoint pointer");
  bool plain = text != "." && text != "..";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '/' || u < 0x20 || u == 0x7f) plain = false;
  }
  require(plain, latest + " names '" + printable(text) +
                     "': not a file name inside the directory (no '/', no '..', one line)");
  const auto file = fs::path(dir) / text;
  std::error_code ec;
  const auto status = fs::symlink_status(file, ec);
  require(fs::exists(status), latest + " names " + printable(text) + ", which is missing");
  require(fs::is_regular_file(status),
          latest + " names " + printable(text) + ", which is not a plain file");
  return file.string();
}

}  // namespace

std::string resolve_checkpoint(const std::string& path) {
  require(!path.empty(), "empty checkpoint path");
  std::error_code ec;
  const auto st = fs::status(path, ec);
  require(!ec || ec == std::errc::no_such_file_or_directory,
          path + ": cannot access (" + ec.message() + ")");
  if (fs::is_directory(st)) return read_latest(path);
  require(fs::is_regular_file(st), path + ": no such checkpoint file or directory");
  return path;
}

CheckpointInfo read_checkpoint_info(const std::string& file) { return open_checkpoint(file).info; }

void load_sharded_tensors(const std::string& file, std::vector<ShardedTensor>& tensors) {
  const OpenedCheckpoint ck = open_checkpoint(file);
  torch::NoGradGuard no_grad;
  for (auto& item : tensors) load_one(ck, file, item);
}

void load_checkpoint_tensors(const std::string& file, std::vector<CheckpointTensor>& tensors) {
  std::vector<ShardedTensor> sharded;
  for (auto& t : tensors) {
    sharded.push_back({t.path, t.tensor, core::replicated_spec(t.tensor.sizes().vec()), false});
  }
  load_sharded_tensors(file, sharded);
}

bool checkpoint_has_tensor(const std::string& file, const std::string& path) {
  const auto f = h5::open_for_read(file);
  return h5::path_exists(f.get(), path);
}

std::vector<StepFile> list_step_files(const std::string& dir) {
  std::vector<StepFile> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.size() < 9 || n.rfind("step-", 0) != 0 || n.compare(n.size() - 3, 3, ".h5") != 0) {
      continue;
    }
    const std::string digits = n.substr(5, n.size() - 8);
    if (digits.empty() || digits.size() > 15 ||
        digits.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    std::error_code sec;
    if (!fs::is_regular_file(it->symlink_status(sec))) continue;
    out.push_back({std::stoll(digits), n});
  }
  std::sort(out.begin(), out.end(), [](const StepFile& a, const StepFile& b) {
    return a.step != b.step ? a.step < b.step : a.name < b.name;
  });
  return out;
}

std::string read_run_id(const std::string& file) {
  const auto f = h5::open_for_read(file);
  const int64_t version = h5::read_int_attr(f.get(), "format_version", file);
  if (version < 3) return "";
  const std::string id = h5::read_string_attr(f.get(), "run_id", file, 64);
  for (char c : id) {
    require(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_',
            file + ": run_id '" + printable(id) + "' is malformed: the file is corrupted");
  }
  return id;
}

}  // namespace shardtune::io
