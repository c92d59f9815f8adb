#include "io/checkpoint/hdf5.h"

#include <atomic>

#include <algorithm>
#include <filesystem>

#include "base/errors.h"

namespace shardtune::io::h5 {

namespace {
// HDF5 prints its own error stack by default; ShardTune reports one line naming file and tensor.
struct QuietHdf5 {
  QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
const QuietHdf5 kQuiet;

std::vector<hsize_t> to_hsize(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }
}  // namespace

std::atomic<bool> g_file_close_failed{false};

bool Handle::reset() {
  bool fine = true;
  if (id_ >= 0) fine = close_(id_) >= 0;
  if (!fine && close_ == &H5Fclose) g_file_close_failed = true;
  id_ = -1;
  return fine;
}

bool plain_number(hid_t type) {
  static const hid_t kPlain[] = {
      H5T_IEEE_F32LE, H5T_IEEE_F32BE, H5T_IEEE_F64LE, H5T_IEEE_F64BE, H5T_STD_I8LE,  H5T_STD_I8BE,
      H5T_STD_U8LE,   H5T_STD_U8BE,   H5T_STD_I16LE,  H5T_STD_I16BE,  H5T_STD_U16LE, H5T_STD_U16BE,
      H5T_STD_I32LE,  H5T_STD_I32BE,  H5T_STD_U32LE,  H5T_STD_U32BE,  H5T_STD_I64LE, H5T_STD_I64BE,
      H5T_STD_U64LE,  H5T_STD_U64BE};
  for (const hid_t plain : kPlain) {
    if (H5Tequal(type, plain) > 0) return true;
  }
  return false;
}

std::string type_name(hid_t type) {
  if (!plain_number(type)) return "other";
  const auto cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) return size == 4 ? "float32" : size == 8 ? "float64" : "float?";
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    return std::string(is_signed ? "int" : "uint") + std::to_string(size * 8);
  }
  return "other";
}

bool write_string_attr(hid_t obj, const char* name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  if (!type.ok() || H5Tset_size(type.get(), std::max<size_t>(value.size(), 1)) < 0) return false;
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  return attr.ok() && H5Awrite(attr.get(), type.get(), value.c_str()) >= 0;
}

bool write_int_attr(hid_t obj, const char* name, int64_t value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
  return attr.ok() && H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) >= 0;
}

bool write_u64_attr(hid_t obj, const char* name, uint64_t value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj, name, H5T_STD_U64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
  return attr.ok() && H5Awrite(attr.get(), H5T_NATIVE_UINT64, &value) >= 0;
}

bool write_u64_array_attr(hid_t obj, const char* name, const std::vector<uint64_t>& values) {
  const hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle attr(H5Acreate2(obj, name, H5T_STD_U64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
  return attr.ok() && H5Awrite(attr.get(), H5T_NATIVE_UINT64, values.data()) >= 0;
}

bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

namespace {

constexpr int64_t kMaxArrayElements = int64_t{1} << 20;

enum class Shape { kScalar, kArray };

// The one checked open every reader goes through: the attribute exists, its type class is `cls`
// (integers: at most 8 bytes; strings: fixed length, at most max_bytes), and its dataspace is a
// scalar (or a one-element array) for Shape::kScalar, or rank 1 for Shape::kArray. Returns the
// attribute with its element count and stored type.
struct CheckedAttr {
  Handle attr{-1, H5Aclose};
  Handle type{-1, H5Tclose};
  int64_t elements = 0;
  size_t type_size = 0;
};

CheckedAttr open_checked(hid_t obj, const char* name, H5T_class_t cls, Shape shape,
                         const std::string& where, size_t max_bytes = 8) {
  const std::string what = where + ": attribute '" + name + "'";
  require(has_attr(obj, name), what + " is missing");
  CheckedAttr a;
  a.attr = Handle(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  require(a.attr.ok(), what + " cannot be opened");
  a.type = Handle(H5Aget_type(a.attr.get()), H5Tclose);
  require(a.type.ok(), what + " has an unreadable type");
  const H5T_class_t stored = H5Tget_class(a.type.get());
  if (cls == H5T_STRING) {
    require(stored == H5T_STRING, what + " is not a string");
    require(H5Tis_variable_str(a.type.get()) == 0, what + " is a variable-length string");
  } else {
    require(stored == H5T_INTEGER, what + " is not an integer");
  }
  a.type_size = H5Tget_size(a.type.get());
  require(a.type_size > 0 && a.type_size <= max_bytes,
          what + " has " + std::to_string(a.type_size) + "-byte elements (at most " +
              std::to_string(max_bytes) + " expected)");
  require(cls == H5T_STRING || plain_number(a.type.get()),
          what + " is not a plain integer (its bits do not fill its bytes)");
  Handle space(H5Aget_space(a.attr.get()), H5Sclose);
  require(space.ok(), what + " has an unreadable dataspace");
  const H5S_class_t kind = H5Sget_simple_extent_type(space.get());
  const int rank = H5Sget_simple_extent_ndims(space.get());
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  require(kind == H5S_SCALAR || kind == H5S_SIMPLE, what + " has no data (null dataspace)");
  if (shape == Shape::kScalar) {
    require(n == 1 && rank <= 1,
            what + " must hold one value, it holds " + std::to_string(static_cast<int64_t>(n)));
  } else {
    require(kind == H5S_SIMPLE && rank == 1, what + " must be a one-dimensional array");
    require(n >= 0 && n <= kMaxArrayElements,
            what + " has " + std::to_string(static_cast<int64_t>(n)) + " elements (at most " +
                std::to_string(kMaxArrayElements) + ")");
  }
  a.elements = static_cast<int64_t>(n);
  return a;
}

template <typename T>
T read_scalar(hid_t obj, const char* name, hid_t mem_type, const std::string& where) {
  static_assert(sizeof(T) == 8, "scalar attributes are read as 64-bit integers");
  const CheckedAttr a = open_checked(obj, name, H5T_INTEGER, Shape::kScalar, where);
  T value{};
  require(H5Aread(a.attr.get(), mem_type, &value) >= 0,
          where + ": cannot read attribute '" + name + "'");
  return value;
}

}  // namespace

std::string read_string_attr(hid_t obj, const char* name, const std::string& where,
                             size_t max_bytes) {
  const CheckedAttr a = open_checked(obj, name, H5T_STRING, Shape::kScalar, where, max_bytes);
  // The memory type has exactly the stored size plus room for the terminator HDF5 may add.
  std::string value(a.type_size + 1, '\0');
  Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  require(mem.ok() && H5Tset_size(mem.get(), a.type_size + 1) >= 0 &&
              H5Tset_strpad(mem.get(), H5T_STR_NULLTERM) >= 0,
          where + ": cannot read attribute '" + name + "'");
  require(H5Aread(a.attr.get(), mem.get(), value.data()) >= 0,
          where + ": cannot read attribute '" + name + "'");
  value.erase(std::find(value.begin(), value.end(), '\0'), value.end());
  return value;
}

int64_t read_int_attr(hid_t obj, const char* name, const std::string& where) {
  return read_scalar<int64_t>(obj, name, H5T_NATIVE_INT64, where);
}

uint64_t read_u64_attr(hid_t obj, const char* name, const std::string& where) {
  return read_scalar<uint64_t>(obj, name, H5T_NATIVE_UINT64, where);
}

int64_t u64_array_attr_size(hid_t obj, const char* name, const std::string& where) {
  return open_checked(obj, name, H5T_INTEGER, Shape::kArray, where).elements;
}

std::vector<uint64_t> read_u64_array_attr(hid_t obj, const char* name, const std::string& where,
                                          int64_t count) {
  const CheckedAttr a = open_checked(obj, name, H5T_INTEGER, Shape::kArray, where);
  require(a.elements == count, where + ": attribute '" + name + "' has " +
                                   std::to_string(a.elements) + " elements, expected " +
                                   std::to_string(count));
  std::vector<uint64_t> values(static_cast<size_t>(count));
  require(count == 0 || H5Aread(a.attr.get(), H5T_NATIVE_UINT64, values.data()) >= 0,
          where + ": cannot read attribute '" + name + "'");
  return values;
}

bool ensure_groups(hid_t file, const std::string& path) {
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    const std::string group = path.substr(0, pos);
    if (H5Lexists(file, group.c_str(), H5P_DEFAULT) > 0) continue;
    Handle g(H5Gcreate2(file, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!g.ok()) return false;
  }
  return true;
}

bool path_exists(hid_t file, const std::string& path) {
  // H5Lexists needs the parents to exist, so walk down. Only hard links count: a soft or external
  // link in a hostile file could lead anywhere.
  for (size_t pos = path.find('/', 1);; pos = path.find('/', pos + 1)) {
    const std::string prefix = pos == std::string::npos ? path : path.substr(0, pos);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    H5L_info_t info;
    if (H5Lget_info(file, prefix.c_str(), &info, H5P_DEFAULT) < 0 ||
        info.type != H5L_TYPE_HARD) {
      return false;
    }
    if (pos == std::string::npos) return true;
  }
}

Handle simple_space(const std::vector<int64_t>& shape) {
  if (shape.empty()) return Handle(H5Screate(H5S_SCALAR), H5Sclose);
  const auto dims = to_hsize(shape);
  return Handle(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
}

std::vector<int64_t> dataset_shape(hid_t dataset) {
  Handle space(H5Dget_space(dataset), H5Sclose);
  const int nd = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(nd, 0)));
  if (nd > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return {dims.begin(), dims.end()};
}

bool select(hid_t space, const Hyperslab& slab) {
  if (slab.whole) return H5Sselect_all(space) >= 0;
  const auto start = to_hsize(slab.start), stride = to_hsize(slab.stride),
             count = to_hsize(slab.count), block = to_hsize(slab.block);
  return H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), stride.data(), count.data(),
                             block.data()) >= 0;
}

ReadFile open_for_read(const std::string& file) {
  base::ReadingFile reading(file);
  std::error_code ec;
  const auto st = std::filesystem::status(file, ec);
  require(!ec || ec == std::errc::no_such_file_or_directory,
          file + ": cannot open checkpoint (" + ec.message() + ")");
  require(std::filesystem::is_regular_file(st), file + ": checkpoint file not found" +
                                                    std::string(std::filesystem::exists(st)
                                                                    ? " (not a regular file)"
                                                                    : ""));
  const hid_t id = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  require(id >= 0, file + ": not a readable HDF5 checkpoint (truncated or corrupted?)");
  return ReadFile{std::move(reading), Handle(id, H5Fclose)};
}

}  // namespace shardtune::io::h5

namespace shardtune::io {

bool hdf5_close_failed() { return h5::g_file_close_failed.load(); }

}  // namespace shardtune::io
