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
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/errors.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this reader copies it as is");

namespace shardtune::io::safetensors {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct DtypeRow {
  Dtype dtype;
  const char* name;
  int bits;
};
// clang-format off
constexpr DtypeRow kDtypes[] = {
    {Dtype::kBool, "BOOL", 8},          {Dtype::kF4, "F4", 4},
    {Dtype::kF6_E2M3, "F6_E2M3", 6},    {Dtype::kF6_E3M2, "F6_E3M2", 6},
    {Dtype::kU8, "U8", 8},              {Dtype::kI8, "I8", 8},
    {Dtype::kF8_E5M2, "F8_E5M2", 8},    {Dtype::kF8_E4M3, "F8_E4M3", 8},
    {Dtype::kF8_E8M0, "F8_E8M0", 8},    {Dtype::kF8_E4M3FNUZ, "F8_E4M3FNUZ", 8},
    {Dtype::kF8_E5M2FNUZ, "F8_E5M2FNUZ", 8}, {Dtype::kI16, "I16", 16},
    {Dtype::kU16, "U16", 16},           {Dtype::kF16, "F16", 16},
    {Dtype::kBF16, "BF16", 16},         {Dtype::kI32, "I32", 32},
    {Dtype::kU32, "U32", 32},           {Dtype::kF32, "F32", 32},
    {Dtype::kC64, "C64", 64},           {Dtype::kF64, "F64", 64},
    {Dtype::kI64, "I64", 64},           {Dtype::kU64, "U64", 64}};
// clang-format on

// Names and JSON excerpts come from untrusted files: keep messages on one printable line.
std::string printable(std::string_view s, size_t max = 120) {
  std::string out;
  for (unsigned char c : s.substr(0, max))
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  if (s.size() > max) out += "...";
  return out;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw UserError(path + ": " + what);
}
[[noreturn]] void fail_tensor(const std::string& path, const std::string& name,
                              const std::string& what) {
  throw UserError(path + ": tensor '" + printable(name) + "': " + what);
}

// Parses JSON, refusing duplicate keys in any object (nlohmann would keep the last silently).
json parse_json_strict(std::string_view text, const std::string& path, const char* what) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: keys.emplace_back(); break;
      case json::parse_event_t::object_end: keys.pop_back(); break;
      case json::parse_event_t::key:
        if (!keys.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default: break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    fail(path, std::string(what) + " is not valid JSON: " + printable(e.what(), 200));
  }
  if (!duplicate.empty())
    fail(path, std::string(what) + ": key '" + printable(duplicate) + "' appears twice");
  return j;
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

// ---- element conversion ----

uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return bits_f32(sign);
    // Subnormal half: normalise into a float exponent.
    uint32_t e = 127 - 15 + 1;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --e;
    }
    return bits_f32(sign | (e << 23) | ((mant & 0x3ffu) << 13));
  }
  if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13));
  return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t float_to_half(float f) {
  const uint32_t x = f32_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t exp = (x >> 23) & 0xffu;
  uint32_t mant = x & 0x7fffffu;
  if (exp == 0xff)
    return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0));
  const int32_t e = static_cast<int32_t>(exp) - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1u))) ++h;  // may carry into the smallest normal
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent gives inf
  return static_cast<uint16_t>(h);
}

float bf16_to_float(uint16_t b) { return bits_f32(static_cast<uint32_t>(b) << 16); }

uint16_t float_to_bf16(float f) {
  const uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
void store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

float load_as_float(const uint8_t* p, Dtype d) {
  switch (d) {
    case Dtype::kF16: return half_to_float(load<uint16_t>(p));
    case Dtype::kBF16: return bf16_to_float(load<uint16_t>(p));
    case Dtype::kF32: return load<float>(p);
    default: return static_cast<float>(load<double>(p));
  }
}
void store_float(uint8_t* p, Dtype d, float v) {
  switch (d) {
    case Dtype::kF16: store(p, float_to_half(v)); break;
    case Dtype::kBF16: store(p, float_to_bf16(v)); break;
    case Dtype::kF32: store(p, v); break;
    default: store(p, static_cast<double>(v)); break;
  }
}

}  // namespace

const char* dtype_name(Dtype dtype) {
  for (const auto& row : kDtypes) {
    if (row.dtype == dtype) return row.name;
  }
  return "?";
}

std::optional<Dtype> dtype_from_name(std::string_view name) {
  for (const auto& row : kDtypes) {
    if (name == row.name) return row.dtype;
  }
  return std::nullopt;
}

int dtype_bits(Dtype dtype) {
  for (const auto& row : kDtypes) {
    if (row.dtype == dtype) return row.bits;
  }
  return 0;
}

bool is_convertible_float(Dtype d) {
  return d == Dtype::kF64 || d == Dtype::kF32 || d == Dtype::kF16 || d == Dtype::kBF16;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated against overflow when parsed
  return n;
}

void convert(const void* src_v, Dtype src_dtype, void* dst_v, Dtype dst_dtype, size_t n,
             const std::string& what) {
  const auto* src = static_cast<const uint8_t*>(src_v);
  auto* dst = static_cast<uint8_t*>(dst_v);
  if (src_dtype == dst_dtype) {
    const int bits = dtype_bits(src_dtype);
    if (bits % 8 != 0) {
      throw UserError(what + ": dtype " + dtype_name(src_dtype) + " cannot be read element-wise");
    }
    std::memcpy(dst, src, n * static_cast<size_t>(bits / 8));
    return;
  }
  if (!is_convertible_float(src_dtype) || !is_convertible_float(dst_dtype)) {
    throw UserError(what + ": dtype " + dtype_name(src_dtype) + " cannot be converted to " +
                    dtype_name(dst_dtype) + " (conversions exist between F64, F32, F16 and BF16)");
  }
  const size_t ss = static_cast<size_t>(dtype_bits(src_dtype) / 8);
  const size_t ds = static_cast<size_t>(dtype_bits(dst_dtype) / 8);
  // The common loads (BF16/F16 -> F32) get tight loops; everything else goes through float.
  if (dst_dtype == Dtype::kF32 && src_dtype == Dtype::kBF16) {
    for (size_t i = 0; i < n; ++i) store(dst + 4 * i, bf16_to_float(load<uint16_t>(src + 2 * i)));
  } else if (dst_dtype == Dtype::kF32 && src_dtype == Dtype::kF16) {
    for (size_t i = 0; i < n; ++i) store(dst + 4 * i, half_to_float(load<uint16_t>(src + 2 * i)));
  } else if (src_dtype == Dtype::kF64 && dst_dtype == Dtype::kF32) {
    for (size_t i = 0; i < n; ++i)
      store(dst + 4 * i, static_cast<float>(load<double>(src + 8 * i)));
  } else if (dst_dtype == Dtype::kF64) {
    for (size_t i = 0; i < n; ++i) {
      store(dst + 8 * i, static_cast<double>(load_as_float(src + ss * i, src_dtype)));
    }
  } else {
    // Narrowing to F16/BF16 (from F64 through F32: F64 -> F16 may round twice).
    for (size_t i = 0; i < n; ++i)
      store_float(dst + ds * i, dst_dtype, load_as_float(src + ss * i, src_dtype));
  }
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
  ::close(fd);  // the mapping keeps the file open
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
}

void File::parse(const ParseOptions& options) {
  if (size_ < 8) {
    fail(path_, "file is " + std::to_string(size_) +
                    " bytes, too short for the 8-byte header length (truncated?)");
  }
  const uint64_t n = load<uint64_t>(data_);
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
  const json header = parse_json_strict(text, path_, "header");
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
                  "shape " + shape_str(t.shape) + " x " + dtype_name(t.dtype) +
                      " is not a whole number of bytes");
    }
    if (bits / 8 != t.end - t.begin) {
      fail_tensor(path_, name,
                  "shape " + shape_str(t.shape) + " x " + dtype_name(t.dtype) + " is " +
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
                    std::to_string(s.offset + s.length) + ") of shape " + shape_str(t.shape) +
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
                    shape_str(shape) + " x " + dtype_name(dst) + " needs " +
                    std::to_string(static_cast<size_t>(n) * ds));
  }
  if (n == 0) return;
  const uint8_t* base = data_ + buffer_start_ + t.begin;
  auto* dst_bytes = static_cast<uint8_t*>(out);
  if (s.dim < 0) {
#ifdef MADV_POPULATE_READ
    // One call maps the whole range (far cheaper than a page fault per 4 KiB); failure (old kernel,
    // memory image) only loses the hint.
    if (mapped_ && t.end - t.begin >= (1u << 20)) {
      const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
      const uintptr_t from = reinterpret_cast<uintptr_t>(base) & ~(page - 1);
      const uintptr_t to = reinterpret_cast<uintptr_t>(base) + (t.end - t.begin);
      ::madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_READ);
    }
#endif
    convert(base, t.dtype, dst_bytes, dst, static_cast<size_t>(n), what);
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
      convert(base + first * ss, t.dtype, dst_bytes + k * run * ds, dst, run, what);
    }
  }
}

// ---- Folder -------------------------------------------------------------------------------------

bool Folder::exists(const std::string& dir, const std::string& stem) {
  return fs::is_regular_file(fs::path(dir) / (stem + ".safetensors")) ||
         fs::is_regular_file(fs::path(dir) / (stem + ".safetensors.index.json"));
}

Folder Folder::open(const std::string& dir, const std::string& stem, const ParseOptions& options) {
  Folder folder;
  folder.dir_ = dir;
  const fs::path single = fs::path(dir) / (stem + ".safetensors");
  const fs::path index = fs::path(dir) / (stem + ".safetensors.index.json");
  if (fs::is_regular_file(single)) {
    folder.files_.push_back(File::open(single.string(), options));
    for (const auto& t : folder.files_[0]->tensors()) folder.where_[t.name] = 0;
    return folder;
  }
  if (!fs::is_regular_file(index)) {
    std::string hint;
    if (fs::exists(fs::path(dir) / "pytorch_model.bin") ||
        fs::exists(fs::path(dir) / "pytorch_model.bin.index.json")) {
      hint =
          "; it holds only pickled PyTorch weights (pytorch_model.bin), which ShardTune never "
          "loads: convert them to safetensors first";
    }
    throw UserError(dir + ": no " + stem + ".safetensors or " + stem + ".safetensors.index.json" +
                    hint);
  }
  const std::string ipath = index.string();
  std::ifstream in(ipath, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) fail(ipath, "cannot read");
  if (text.size() > options.max_header_bytes) fail(ipath, "index is larger than the header limit");
  const json j = parse_json_strict(text, ipath, "index");
  if (!j.is_object()) fail(ipath, "index is not a JSON object");
  const auto map_it = j.find("weight_map");
  if (map_it == j.end() || !map_it->is_object())
    fail(ipath, "'weight_map' is missing or not an object");
  std::map<std::string, size_t> file_index;     // file name -> index in files_
  std::map<std::string, std::string> expected;  // tensor -> file name
  for (const auto& [tensor, file_json] : map_it->items()) {
    if (!file_json.is_string())
      fail(ipath, "weight_map '" + printable(tensor) + "' is not a string");
    const std::string name = file_json.get<std::string>();
    const fs::path rel(name);
    bool escapes = name.empty() || rel.is_absolute() || name.find('\\') != std::string::npos;
    for (const auto& part : rel) escapes = escapes || part == ".." || part == ".";
    if (escapes) {
      fail(ipath, "weight_map '" + printable(tensor) + "' names file '" + printable(name) +
                      "', which is not a plain path inside the folder");
    }
    if (!file_index.count(name)) {
      const fs::path p = fs::path(dir) / rel;
      if (!fs::is_regular_file(p)) {
        fail(ipath,
             "weight_map '" + printable(tensor) + "' names missing file '" + printable(name) + "'");
      }
      file_index[name] = folder.files_.size();
      folder.files_.push_back(File::open(p.string(), options));
    }
    expected[tensor] = name;
  }
  if (expected.empty()) fail(ipath, "weight_map is empty");
  for (const auto& [tensor, name] : expected) {
    const size_t i = file_index.at(name);
    if (!folder.files_[i]->find(tensor)) {
      fail(ipath, "weight_map puts tensor '" + printable(tensor) + "' in '" + printable(name) +
                      "', which does not hold it");
    }
    folder.where_[tensor] = i;
  }
  for (const auto& [name, i] : file_index) {
    for (const auto& t : folder.files_[i]->tensors()) {
      auto it = expected.find(t.name);
      if (it == expected.end() || it->second != name) {
        fail(folder.files_[i]->path(), "tensor '" + printable(t.name) +
                                           "' is not mapped to this file by " + stem +
                                           ".safetensors.index.json");
      }
    }
  }
  return folder;
}

std::vector<std::string> Folder::names() const {
  std::vector<std::string> out;
  for (const auto& item : where_) out.push_back(item.first);
  return out;
}

const File* Folder::file_of(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? nullptr : files_[it->second].get();
}

const TensorInfo* Folder::find(const std::string& name) const {
  const File* f = file_of(name);
  return f ? f->find(name) : nullptr;
}

uint64_t Folder::total_file_bytes() const {
  uint64_t total = 0;
  for (const auto& f : files_) total += f->size();
  return total;
}

// ---- writing ------------------------------------------------------------------------------------

uint64_t TensorEntry::bytes() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n * static_cast<uint64_t>(dtype_bits(dtype) / 8);
}

namespace {
void write_all(int fd, const void* data, size_t n, uint64_t offset, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w =
        ::pwrite(fd, p, std::min<size_t>(n, size_t{1} << 30), static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw UserError(path + ": write failed: " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}
}  // namespace

Writer::Writer(std::string path, std::vector<TensorEntry> entries,
               std::map<std::string, std::string> metadata)
    : path_(std::move(path)), tmp_(path_ + ".tmp") {
  // The reference writer's order: larger dtype alignment first, then name.
  std::stable_sort(entries.begin(), entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    const int aa = dtype_bits(a.dtype), bb = dtype_bits(b.dtype);
    return aa != bb ? aa > bb : a.name < b.name;
  });
  nlohmann::ordered_json header;
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (const auto& e : entries) {
    if (dtype_bits(e.dtype) % 8 != 0) {
      throw std::invalid_argument("safetensors::Writer: sub-byte dtype " +
                                  std::string(dtype_name(e.dtype)));
    }
    if (ranges_.count(e.name))
      throw std::invalid_argument("safetensors::Writer: duplicate " + e.name);
    const uint64_t end = offset + e.bytes();
    header[e.name] = {
        {"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, end}}};
    ranges_[e.name] = {offset, end};
    written_[e.name] = false;
    offset = end;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  buffer_start_ = 8 + text.size();
  file_bytes_ = buffer_start_ + offset;
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw UserError(tmp_ + ": cannot create: " + std::strerror(errno));
  const uint64_t n = text.size();
  uint8_t len[8];
  std::memcpy(len, &n, 8);
  write_all(fd_, len, 8, 0, tmp_);
  write_all(fd_, text.data(), text.size(), 8, tmp_);
  if (::ftruncate(fd_, static_cast<off_t>(file_bytes_)) != 0) {
    throw UserError(tmp_ + ": cannot size the file: " + std::strerror(errno));
  }
}

Writer::~Writer() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink(tmp_.c_str());
}

void Writer::write(const std::string& name, const void* data, size_t nbytes) {
  auto it = ranges_.find(name);
  if (it == ranges_.end())
    throw std::invalid_argument("safetensors::Writer: unknown tensor " + name);
  const auto [begin, end] = it->second;
  if (nbytes != end - begin) {
    throw std::invalid_argument("safetensors::Writer: " + name + " is " +
                                std::to_string(end - begin) + " bytes, got " +
                                std::to_string(nbytes));
  }
  write_all(fd_, data, nbytes, buffer_start_ + begin, tmp_);
  written_[name] = true;
}

void Writer::finish() {
  for (const auto& [name, done] : written_) {
    if (!done) throw std::logic_error("safetensors::Writer: tensor " + name + " was never written");
  }
  if (::fsync(fd_) != 0) throw UserError(tmp_ + ": fsync failed: " + std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  std::error_code ec;
  fs::rename(tmp_, path_, ec);
  if (ec) throw UserError(path_ + ": cannot rename from " + tmp_ + ": " + ec.message());
  finished_ = true;
}

ShardedWriter::ShardedWriter(const std::string& dir, std::vector<TensorEntry> entries,
                             uint64_t max_shard_bytes, const std::string& stem)
    : dir_(dir), stem_(stem) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw UserError(dir + ": cannot create directory: " + ec.message());
  std::vector<std::vector<TensorEntry>> shards;
  uint64_t current = 0;
  for (auto& e : entries) {
    const uint64_t b = e.bytes();
    if (shards.empty() || (current + b > max_shard_bytes && !shards.back().empty())) {
      shards.emplace_back();
      current = 0;
    }
    current += b;
    total_bytes_ += b;
    shard_of_[e.name] = shards.size() - 1;
    shards.back().push_back(std::move(e));
  }
  if (shards.empty()) shards.emplace_back();
  const size_t n = shards.size();
  for (size_t i = 0; i < n; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "-%05zu-of-%05zu.safetensors", i + 1, n);
    file_names_.push_back(n == 1 ? stem + ".safetensors" : stem + name);
    writers_.push_back(std::make_unique<Writer>((fs::path(dir) / file_names_.back()).string(),
                                                std::move(shards[i])));
  }
}

void ShardedWriter::write(const std::string& name, const void* data, size_t nbytes) {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end())
    throw std::invalid_argument("safetensors::ShardedWriter: unknown " + name);
  writers_[it->second]->write(name, data, nbytes);
}

std::vector<std::string> ShardedWriter::finish() {
  for (auto& w : writers_) w->finish();
  const fs::path index = fs::path(dir_) / (stem_ + ".safetensors.index.json");
  if (writers_.size() > 1) {
    nlohmann::ordered_json j;
    j["metadata"] = {{"total_size", total_bytes_}};
    nlohmann::ordered_json map = nlohmann::ordered_json::object();
    for (const auto& [name, shard] : shard_of_) map[name] = file_names_[shard];  // sorted by name
    j["weight_map"] = map;
    const std::string tmp = index.string() + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << j.dump(2) << "\n";
      if (!out) throw UserError(tmp + ": write failed");
    }
    std::error_code ec;
    fs::rename(tmp, index, ec);
    if (ec) throw UserError(index.string() + ": cannot rename: " + ec.message());
  }
  // Files of an earlier export into the same folder would shadow (a single file wins over an index)
  // or confuse this one: remove every "<stem>.safetensors", "<stem>-*-of-*.safetensors" and index
  // that this write did not produce.
  const std::set<std::string> ours(file_names_.begin(), file_names_.end());
  const std::string sharded_prefix = stem_ + "-";
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir_, ec)) {
    const std::string name = item.path().filename().string();
    const bool single = name == stem_ + ".safetensors";
    const bool shard = name.rfind(sharded_prefix, 0) == 0 &&
                       name.find("-of-") != std::string::npos && name.size() > 12 &&
                       name.compare(name.size() - 12, 12, ".safetensors") == 0;
    const bool stale_index = writers_.size() == 1 && item.path() == index;
    if (((single || shard) && !ours.count(name)) || stale_index) fs::remove(item.path(), ec);
  }
  return file_names_;
}

}  // namespace shardtune::io::safetensors
