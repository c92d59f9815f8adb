#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "base/json.h"
#include "base/strings.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this reader copies it as is");

namespace shardtune::io::safetensors {

namespace fs = std::filesystem;
using nlohmann::json;
using base::printable;
using base::shape_string;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw UserError(path + ": " + what);
}
[[noreturn]] void fail_tensor(const std::string& path, const std::string& name,
                              const std::string& what) {
  throw UserError(path + ": tensor '" + printable(name) + "': " + what);
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated against overflow when parsed
  return n;
}

// ---- File ---------------------------------------------------------------------------------------

std::unique_ptr<File> File::open(const std::string& path, const ParseOptions& options) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  std::unique_ptr<File> file(new File());
  file->path_ = path;
  file->reading_ = base::ReadingFile(path);  // a mapped file that shrinks faults on read
  file->size_ = static_cast<uint64_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail(path, std::string("cannot map: ") + std::strerror(err));
    }
    file->data_ = static_cast<const uint8_t*>(p);
    file->mapped_ = true;
  }
  file->fd_ = fd;  // read() copies large runs with pread (see copy_run)
  file->parse(options);
  return file;
}

std::unique_ptr<File> File::from_memory(const uint8_t* data, size_t size, std::string name,
                                        const ParseOptions& options) {
  std::unique_ptr<File> file(new File());
  file->path_ = std::move(name);
  file->data_ = data;
  file->size_ = size;
  file->parse(options);
  return file;
}

File::~File() {
  if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

void File::copy_run(uint64_t offset, Dtype src, uint8_t* out, Dtype dst, size_t n,
                    const std::string& what) const {
  const size_t ss = static_cast<size_t>(dtype_bits(src) / 8);
  const size_t ds = static_cast<size_t>(dtype_bits(dst) / 8);
  if (fd_ < 0 || n * ss < kPreadFrom) {
    convert(data_ + offset, src, out, dst, n, what);
    return;
  }
  // Large runs are read as dd reads: pread into the destination (same dtype), or into a buffer of
  // kPreadChunk bytes that stays in cache and is converted from there. Unlike reading through the
  // mapping, nothing is faulted in page by page (a cold BF16 load was bound by that).
  const auto read_exactly = [&](uint8_t* to, size_t bytes, uint64_t at) {
    while (bytes > 0) {
      const ssize_t got = ::pread(fd_, to, bytes, static_cast<off_t>(at));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        throw UserError(what + ": read failed at byte " + std::to_string(at) + ": " +
                        (got < 0 ? std::strerror(errno)
                                 : "end of file (the file shrank while it was being read)"));
      }
      to += got;
      at += static_cast<uint64_t>(got);
      bytes -= static_cast<size_t>(got);
    }
  };
  if (src == dst) {
    read_exactly(out, n * ss, offset);
    return;
  }
  std::vector<uint8_t> buffer(std::min(n * ss, kPreadChunk));
  const size_t per_chunk = buffer.size() / ss;
  for (size_t done = 0; done < n;) {
    const size_t count = std::min(per_chunk, n - done);
    read_exactly(buffer.data(), count * ss, offset + done * ss);
    convert(buffer.data(), src, out + done * ds, dst, count, what);
    done += count;
  }
}

void File::parse(const ParseOptions& options) {
  if (size_ < 8) {
    fail(path_, "file is " + std::to_string(size_) +
                    " bytes, too short for the 8-byte header length (truncated?)");
  }
  uint64_t n = 0;  // little-endian u64 (the static_assert above)
  std::memcpy(&n, data_, sizeof n);
  if (n > options.max_header_bytes) {
    fail(path_, "header length " + std::to_string(n) + " exceeds the limit of " +
                    std::to_string(options.max_header_bytes) + " bytes");
  }
  if (n > size_ - 8) {
    fail(path_, "header length " + std::to_string(n) + " runs past the end of the file (" +
                    std::to_string(size_) + " bytes; truncated?)");
  }
  const std::string_view text(reinterpret_cast<const char*>(data_ + 8), n);
  if (text.empty() || text[0] != '{') fail(path_, "header does not start with '{'");
  const json header = base::parse_json_strict(text, path_ + ": header");
  if (!header.is_object()) fail(path_, "header is not a JSON object");
  buffer_start_ = 8 + n;
  const uint64_t buffer_bytes = size_ - buffer_start_;

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(path_, "__metadata__ is not an object of strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          fail(path_, "__metadata__ '" + printable(key) + "' is not a string");
        }
        metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) fail_tensor(path_, name, "entry is not an object");
    TensorInfo t;
    t.name = name;
    const auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string()) {
      fail_tensor(path_, name, "'dtype' is missing or not a string");
    }
    const auto dtype = dtype_from_name(dtype_it->get<std::string>());
    if (!dtype)
      fail_tensor(path_, name, "unknown dtype '" + printable(dtype_it->get<std::string>()) + "'");
    t.dtype = *dtype;

    const auto shape_it = entry.find("shape");
    if (shape_it == entry.end() || !shape_it->is_array()) {
      fail_tensor(path_, name, "'shape' is missing or not an array");
    }
    uint64_t numel = 1;
    for (const auto& d : *shape_it) {
      if (!d.is_number_unsigned() ||
          d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail_tensor(path_, name, "shape entries must be non-negative integers");
      }
      const uint64_t v = d.get<uint64_t>();
      if (mul_overflows(numel, v, &numel) ||
          numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail_tensor(path_, name, "shape's element count overflows");
      }
      t.shape.push_back(static_cast<int64_t>(v));
    }
    const auto off_it = entry.find("data_offsets");
    if (off_it == entry.end() || !off_it->is_array() || off_it->size() != 2 ||
        !(*off_it)[0].is_number_unsigned() || !(*off_it)[1].is_number_unsigned()) {
      fail_tensor(path_, name, "'data_offsets' must be [begin, end] with non-negative integers");
    }
    t.begin = (*off_it)[0].get<uint64_t>();
    t.end = (*off_it)[1].get<uint64_t>();
    if (t.end < t.begin) {
      fail_tensor(path_, name,
                  "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                      "] end before begin");
    }
    if (t.end > buffer_bytes) {
      fail_tensor(path_, name,
                  "data_offsets end " + std::to_string(t.end) + " runs past the data buffer (" +
                      std::to_string(buffer_bytes) + " bytes; truncated?)");
    }
    uint64_t bits = 0;
    if (mul_overflows(numel, static_cast<uint64_t>(dtype_bits(t.dtype)), &bits)) {
      fail_tensor(path_, name, "byte size overflows");
    }
    if (bits % 8 != 0) {
      fail_tensor(path_, name,
                  "shape " + shape_string(t.shape) + " x " + dtype_name(t.dtype) +
                      " is not a whole number of bytes");
    }
    if (bits / 8 != t.end - t.begin) {
      fail_tensor(path_, name,
                  "shape " + shape_string(t.shape) + " x " + dtype_name(t.dtype) + " is " +
                      std::to_string(bits / 8) + " bytes but data_offsets span " +
                      std::to_string(t.end - t.begin));
    }
    tensors_.push_back(std::move(t));
  }

  // Ranges: no overlaps, and (the format's rule) no holes.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const TensorInfo* last = nullptr;
  for (const auto* t : by_offset) {
    if (t->begin < covered && t->end > t->begin) {
      fail_tensor(path_, t->name,
                  "data_offsets [" + std::to_string(t->begin) + ", " + std::to_string(t->end) +
                      "] overlap tensor '" + printable(last->name) + "'");
    }
    if (options.require_tiling && t->begin != covered) {
      fail_tensor(path_, t->name,
                  "data_offsets begin " + std::to_string(t->begin) + " leaves a hole after byte " +
                      std::to_string(covered));
    }
    if (t->end > covered) {
      covered = t->end;
      last = t;
    }
  }
  if (options.require_tiling && covered != buffer_bytes) {
    fail(path_, "tensors cover " + std::to_string(covered) + " of the " +
                    std::to_string(buffer_bytes) + " data bytes (holes or trailing bytes)");
  }
  std::sort(tensors_.begin(), tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
}

const TensorInfo* File::find(const std::string& name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorInfo& t, const std::string& n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

const TensorInfo& File::at(const std::string& name) const {
  const auto* t = find(name);
  if (!t) fail(path_, "no tensor '" + printable(name) + "'");
  return *t;
}

std::string_view File::raw(const TensorInfo& t) const {
  return {reinterpret_cast<const char*>(data_ + buffer_start_ + t.begin), t.end - t.begin};
}

std::vector<int64_t> File::slice_shape(const TensorInfo& t, const Slice& s,
                                       const std::string& path) {
  auto shape = t.shape;
  if (s.dim < 0) return shape;
  const auto bad = [&](const std::string& why) {
    fail_tensor(path, t.name,
                "cannot take slice dim " + std::to_string(s.dim) + " (" + std::to_string(s.parts) +
                    " parts) [" + std::to_string(s.offset) + ", " +
                    std::to_string(s.offset + s.length) + ") of shape " + shape_string(t.shape) +
                    ": " + why);
  };
  if (s.dim >= static_cast<int>(shape.size())) bad("no such dim");
  const int64_t n = shape[static_cast<size_t>(s.dim)];
  if (s.parts < 1 || n % s.parts != 0) bad("dim does not divide into parts");
  if (s.offset < 0 || s.length < 0 || s.offset + s.length > n / s.parts)
    bad("range outside a part");
  shape[static_cast<size_t>(s.dim)] = s.parts * s.length;
  return shape;
}

void File::read(const TensorInfo& t, const Slice& s, Dtype dst, void* out, size_t out_bytes) const {
  const auto shape = slice_shape(t, s, path_);
  const std::string what = path_ + ": tensor '" + printable(t.name) + "'";
  if (dtype_bits(t.dtype) % 8 != 0 || dtype_bits(dst) % 8 != 0) {
    throw UserError(what + ": dtype " + dtype_name(t.dtype) + " cannot be read element-wise");
  }
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const size_t ss = static_cast<size_t>(dtype_bits(t.dtype) / 8);
  const size_t ds = static_cast<size_t>(dtype_bits(dst) / 8);
  if (out_bytes != static_cast<size_t>(n) * ds) {
    throw UserError(what + ": destination holds " + std::to_string(out_bytes) + " bytes, slice " +
                    shape_string(shape) + " x " + dtype_name(dst) + " needs " +
                    std::to_string(static_cast<size_t>(n) * ds));
  }
  if (n == 0) return;
  const uint64_t base = buffer_start_ + t.begin;  // byte offset of the tensor in the file
  auto* dst_bytes = static_cast<uint8_t*>(out);
  if (s.dim < 0) {
    copy_run(base, t.dtype, dst_bytes, dst, static_cast<size_t>(n), what);
    return;
  }
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < s.dim; ++i) outer *= t.shape[static_cast<size_t>(i)];
  for (size_t i = static_cast<size_t>(s.dim) + 1; i < t.shape.size(); ++i) inner *= t.shape[i];
  const int64_t segment = t.shape[static_cast<size_t>(s.dim)] / s.parts;
  const size_t run = static_cast<size_t>(s.length * inner);  // contiguous elements per copy
  size_t k = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t p = 0; p < s.parts; ++p, ++k) {
      const size_t first = static_cast<size_t>(((o * s.parts + p) * segment + s.offset) * inner);
      copy_run(base + first * ss, t.dtype, dst_bytes + k * run * ds, dst, run, what);
    }
  }
}

}  // namespace shardtune::io::safetensors
