#include "io/checkpoint/hdf5.h"

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

bool Handle::reset() {
  bool fine = true;
  if (id_ >= 0) fine = close_(id_) >= 0;
  id_ = -1;
  return fine;
}

hid_t file_type(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat: return H5T_NATIVE_FLOAT;
    case torch::kDouble: return H5T_NATIVE_DOUBLE;
    case torch::kLong: return H5T_NATIVE_INT64;
    case torch::kInt: return H5T_NATIVE_INT32;
    case torch::kByte: return H5T_NATIVE_UINT8;
    default: throw UserError(std::string("checkpoint: unsupported dtype ") + c10::toString(dtype));
  }
}

std::string type_name(hid_t type) {
  const auto cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) return size == 4 ? "float32" : size == 8 ? "float64" : "float?";
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    return std::string(is_signed ? "int" : "uint") + std::to_string(size * 8);
  }
  return "other";
}

std::string dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat: return "float32";
    case torch::kDouble: return "float64";
    case torch::kLong: return "int64";
    case torch::kInt: return "int32";
    case torch::kByte: return "uint8";
    default: return c10::toString(dtype);
  }
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

bool write_u64_array_attr(hid_t obj, const char* name, const std::vector<uint64_t>& values) {
  const hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle attr(H5Acreate2(obj, name, H5T_STD_U64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
  return attr.ok() && H5Awrite(attr.get(), H5T_NATIVE_UINT64, values.data()) >= 0;
}

bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

namespace {
// The attribute `name` of `obj`, opened; UserError naming `where` when it is missing.
Handle open_attr(hid_t obj, const char* name, const std::string& where) {
  require(has_attr(obj, name), where + ": attribute '" + name + "' is missing");
  return Handle(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
}

template <typename T>
T read_scalar_attr(hid_t obj, const char* name, hid_t mem_type, const std::string& where) {
  Handle attr = open_attr(obj, name, where);
  T value{};
  require(H5Aread(attr.get(), mem_type, &value) >= 0,
          where + ": cannot read attribute '" + name + "'");
  return value;
}
}  // namespace

std::string read_string_attr(hid_t obj, const char* name, const std::string& where) {
  Handle attr = open_attr(obj, name, where);
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  require(H5Tget_class(type.get()) == H5T_STRING,
          where + ": attribute '" + name + "' is not a string");
  std::string value(H5Tget_size(type.get()), '\0');
  Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem.get(), value.size());
  require(H5Aread(attr.get(), mem.get(), value.data()) >= 0,
          where + ": cannot read attribute '" + name + "'");
  value.erase(std::find(value.begin(), value.end(), '\0'), value.end());
  return value;
}

int64_t read_int_attr(hid_t obj, const char* name, const std::string& where) {
  return read_scalar_attr<int64_t>(obj, name, H5T_NATIVE_INT64, where);
}

uint64_t read_u64_attr(hid_t obj, const char* name, const std::string& where) {
  return read_scalar_attr<uint64_t>(obj, name, H5T_NATIVE_UINT64, where);
}

std::vector<uint64_t> read_u64_array_attr(hid_t obj, const char* name, const std::string& where) {
  Handle attr = open_attr(obj, name, where);
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  require(n >= 0, where + ": attribute '" + name + "' is unreadable");
  std::vector<uint64_t> values(static_cast<size_t>(n));
  require(n == 0 || H5Aread(attr.get(), H5T_NATIVE_UINT64, values.data()) >= 0,
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
  // H5Lexists needs the parents to exist, so walk down.
  for (size_t pos = path.find('/', 1);; pos = path.find('/', pos + 1)) {
    const std::string prefix = pos == std::string::npos ? path : path.substr(0, pos);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
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

Handle open_for_read(const std::string& file) {
  require(std::filesystem::is_regular_file(file), file + ": checkpoint file not found");
  const hid_t id = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  require(id >= 0, file + ": not a readable HDF5 checkpoint (truncated or corrupted?)");
  return Handle(id, H5Fclose);
}

}  // namespace shardtune::io::h5
