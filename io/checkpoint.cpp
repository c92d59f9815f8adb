#include "io/checkpoint.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "parallel/errors.h"

namespace fs = std::filesystem;

namespace shardtune::io {

namespace {

// Turns HDF5's own error stack printing off: ShardTune reports one line naming file and tensor.
struct QuietHdf5 {
  QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
const QuietHdf5 kQuiet;

// RAII for hid_t handles.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

hid_t h5_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return H5T_NATIVE_FLOAT;
    case torch::kDouble: return H5T_NATIVE_DOUBLE;
    case torch::kLong: return H5T_NATIVE_INT64;
    case torch::kInt: return H5T_NATIVE_INT32;
    case torch::kByte: return H5T_NATIVE_UINT8;
    default: throw UserError(std::string("checkpoint: unsupported dtype ") + c10::toString(t));
  }
}

std::string dtype_name(hid_t type) {
  const auto cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) return size == 4 ? "float32" : size == 8 ? "float64" : "float?";
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    return std::string(is_signed ? "int" : "uint") + std::to_string(size * 8);
  }
  return "other";
}

std::string torch_dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return "float32";
    case torch::kDouble: return "float64";
    case torch::kLong: return "int64";
    case torch::kInt: return "int32";
    case torch::kByte: return "uint8";
    default: return c10::toString(t);
  }
}

void write_string_attr(hid_t obj, const char* name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), std::max<size_t>(value.size(), 1));
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.ok() || H5Awrite(attr.get(), type.get(), value.c_str()) < 0) {
    throw std::runtime_error(std::string("cannot write attribute ") + name);
  }
}

void write_int_attr(hid_t obj, const char* name, int64_t value, hid_t type = H5T_NATIVE_INT64) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.ok() || H5Awrite(attr.get(), type, &value) < 0) {
    throw std::runtime_error(std::string("cannot write attribute ") + name);
  }
}

bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

std::string read_string_attr(hid_t obj, const char* name, const std::string& file) {
  require(has_attr(obj, name), file + ": attribute '" + name + "' is missing");
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  require(H5Tget_class(type.get()) == H5T_STRING,
          file + ": attribute '" + name + "' is not a string");
  std::string value(H5Tget_size(type.get()), '\0');
  Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem.get(), value.size());
  require(H5Aread(attr.get(), mem.get(), value.data()) >= 0,
          file + ": cannot read attribute '" + name + "'");
  value.erase(std::find(value.begin(), value.end(), '\0'), value.end());
  return value;
}

int64_t read_int_attr(hid_t obj, const char* name, const std::string& file) {
  require(has_attr(obj, name), file + ": attribute '" + name + "' is missing");
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  int64_t value = 0;
  require(H5Aread(attr.get(), H5T_NATIVE_INT64, &value) >= 0,
          file + ": cannot read attribute '" + name + "'");
  return value;
}

// Creates intermediate groups of `path` ("/a/b/c" -> /a, /a/b).
void ensure_groups(hid_t file, const std::string& path) {
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    const std::string group = path.substr(0, pos);
    if (H5Lexists(file, group.c_str(), H5P_DEFAULT) > 0) continue;
    Handle g(H5Gcreate2(file, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!g.ok()) throw std::runtime_error("cannot create group " + group);
  }
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Writes `content` to `target` through a temporary file + fsync + rename.
void atomic_write_text(const std::string& target, const std::string& content) {
  const std::string tmp = target + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    if (!out) throw UserError(tmp + ": cannot write");
  }
  fsync_path(tmp, false);
  fs::rename(tmp, target);
  fsync_path(fs::path(target).parent_path().string(), true);
}

std::string step_file_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld.h5", static_cast<long long>(step));
  return name;
}

Handle open_for_read(const std::string& file) {
  require(fs::is_regular_file(file), file + ": checkpoint file not found");
  const hid_t id = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  require(id >= 0, file + ": not a readable HDF5 checkpoint (truncated or corrupted?)");
  return Handle(id, H5Fclose);
}

}  // namespace

uint64_t tensor_checksum(const torch::Tensor& tensor) {
  auto t = tensor.contiguous();
  const auto* bytes = static_cast<const unsigned char*>(t.data_ptr());
  const size_t n = static_cast<size_t>(t.numel()) * t.element_size();
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; ++i) {
    h ^= bytes[i];
    h *= 1099511628211ULL;
  }
  return h;
}

std::string save_checkpoint(const std::string& dir, const CheckpointInfo& info,
                            const std::vector<CheckpointTensor>& tensors, int keep_last) {
  fs::create_directories(dir);
  const std::string name = step_file_name(info.step);
  const std::string final_path = (fs::path(dir) / name).string();
  const std::string tmp_path = final_path + ".tmp";
  {
    Handle file(H5Fcreate(tmp_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    require(file.ok(), tmp_path + ": cannot create checkpoint file");
    write_int_attr(file.get(), "format_version", info.format_version);
    write_string_attr(file.get(), "shardtune_version", info.shardtune_version);
    write_string_attr(file.get(), "model_config", info.model_config);
    write_string_attr(file.get(), "strategy", info.strategy);
    write_string_attr(file.get(), "tokenizer", info.tokenizer);
    write_string_attr(file.get(), "layout", info.layout);
    write_int_attr(file.get(), "step", info.step);
    write_int_attr(file.get(), "consumed_samples", info.consumed_samples);
    for (const auto& item : tensors) {
      auto t = item.tensor.detach().to(torch::kCPU).contiguous();
      ensure_groups(file.get(), item.path);
      std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
      Handle space(t.dim() == 0 ? H5Screate(H5S_SCALAR)
                                : H5Screate_simple(static_cast<int>(dims.size()), dims.data(),
                                                   nullptr),
                   H5Sclose);
      const hid_t type = h5_type(t.scalar_type());
      Handle ds(H5Dcreate2(file.get(), item.path.c_str(), type, space.get(), H5P_DEFAULT,
                           H5P_DEFAULT, H5P_DEFAULT),
                H5Dclose);
      if (!ds.ok() || (t.numel() > 0 && H5Dwrite(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                                  t.data_ptr()) < 0)) {
        throw UserError(tmp_path + ": cannot write tensor " + item.path);
      }
      write_int_attr(ds.get(), "fnv1a64", static_cast<int64_t>(tensor_checksum(t)),
                     H5T_NATIVE_UINT64);
    }
    H5Fflush(file.get(), H5F_SCOPE_GLOBAL);
  }
  fsync_path(tmp_path, false);
  fs::rename(tmp_path, final_path);
  fsync_path(dir, true);
  atomic_write_text((fs::path(dir) / "latest").string(), name + "\n");

  if (keep_last > 0) {
    std::vector<std::string> steps;
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string n = entry.path().filename().string();
      if (n.rfind("step-", 0) == 0 && entry.path().extension() == ".h5") steps.push_back(n);
    }
    std::sort(steps.begin(), steps.end());
    for (size_t i = 0; i + static_cast<size_t>(keep_last) < steps.size(); ++i) {
      if (steps[i] != name) fs::remove(fs::path(dir) / steps[i]);
    }
  }
  return final_path;
}

std::string resolve_checkpoint(const std::string& path) {
  if (fs::is_directory(path)) {
    const auto latest = fs::path(path) / "latest";
    require(fs::is_regular_file(latest), path + ": directory has no 'latest' checkpoint pointer");
    std::ifstream in(latest);
    std::string name;
    std::getline(in, name);
    require(!name.empty(), latest.string() + ": empty checkpoint pointer");
    const auto file = fs::path(path) / name;
    require(fs::is_regular_file(file), latest.string() + " names " + name + ", which is missing");
    return file.string();
  }
  require(fs::is_regular_file(path), path + ": no such checkpoint file or directory");
  return path;
}

CheckpointInfo read_checkpoint_info(const std::string& file) {
  Handle f = open_for_read(file);
  CheckpointInfo info;
  info.format_version = static_cast<int>(read_int_attr(f.get(), "format_version", file));
  require(info.format_version == kCheckpointFormatVersion,
          file + ": checkpoint format version " + std::to_string(info.format_version) +
              " is not supported (this build reads " + std::to_string(kCheckpointFormatVersion) +
              ")");
  info.shardtune_version = read_string_attr(f.get(), "shardtune_version", file);
  info.model_config = read_string_attr(f.get(), "model_config", file);
  info.strategy = read_string_attr(f.get(), "strategy", file);
  info.tokenizer = read_string_attr(f.get(), "tokenizer", file);
  info.layout = read_string_attr(f.get(), "layout", file);
  info.step = read_int_attr(f.get(), "step", file);
  info.consumed_samples = read_int_attr(f.get(), "consumed_samples", file);
  return info;
}

void load_checkpoint_tensors(const std::string& file, std::vector<CheckpointTensor>& tensors) {
  Handle f = open_for_read(file);
  for (auto& item : tensors) {
    const std::string where = file + ": tensor " + item.path;
    require(H5Lexists(f.get(), item.path.substr(0, item.path.rfind('/')).c_str(), H5P_DEFAULT) > 0 &&
                H5Lexists(f.get(), item.path.c_str(), H5P_DEFAULT) > 0,
            where + " is missing");
    Handle ds(H5Dopen2(f.get(), item.path.c_str(), H5P_DEFAULT), H5Dclose);
    require(ds.ok(), where + " cannot be opened");
    Handle space(H5Dget_space(ds.get()), H5Sclose);
    const int nd = H5Sget_simple_extent_ndims(space.get());
    std::vector<hsize_t> dims(static_cast<size_t>(std::max(nd, 0)));
    if (nd > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    std::vector<int64_t> shape(dims.begin(), dims.end());
    require(shape == item.tensor.sizes().vec(),
            where + " has shape " + c10::str(c10::IntArrayRef(shape)) + ", expected " +
                c10::str(item.tensor.sizes()));
    Handle ftype(H5Dget_type(ds.get()), H5Tclose);
    const std::string stored = dtype_name(ftype.get());
    const std::string wanted = torch_dtype_name(item.tensor.scalar_type());
    require(stored == wanted, where + " has dtype " + stored + ", expected " + wanted);
    auto buffer = torch::empty(item.tensor.sizes(), item.tensor.options().device(torch::kCPU));
    if (buffer.numel() > 0) {
      require(H5Dread(ds.get(), h5_type(buffer.scalar_type()), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                      buffer.data_ptr()) >= 0,
              where + " cannot be read (truncated or corrupted file?)");
    }
    if (has_attr(ds.get(), "fnv1a64")) {
      Handle attr(H5Aopen(ds.get(), "fnv1a64", H5P_DEFAULT), H5Aclose);
      uint64_t expected = 0;
      H5Aread(attr.get(), H5T_NATIVE_UINT64, &expected);
      require(tensor_checksum(buffer) == expected,
              where + " fails its checksum (the file is corrupted)");
    }
    torch::NoGradGuard no_grad;
    item.tensor.copy_(buffer);
  }
}

std::vector<TensorEntry> list_checkpoint_tensors(const std::string& file) {
  Handle f = open_for_read(file);
  std::vector<TensorEntry> out;
  struct Ctx {
    std::vector<TensorEntry>* out;
  } ctx{&out};
  // Link visiting with the unversioned names works on HDF5 1.10 and 1.12+ alike.
  auto visit = [](hid_t group, const char* name, const H5L_info_t*, void* data) -> herr_t {
    Handle obj(H5Oopen(group, name, H5P_DEFAULT), H5Oclose);
    if (!obj.ok() || H5Iget_type(obj.get()) != H5I_DATASET) return 0;
    auto* c = static_cast<Ctx*>(data);
    Handle space(H5Dget_space(obj.get()), H5Sclose);
    Handle type(H5Dget_type(obj.get()), H5Tclose);
    const int nd = H5Sget_simple_extent_ndims(space.get());
    std::vector<hsize_t> dims(static_cast<size_t>(std::max(nd, 0)));
    if (nd > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    c->out->push_back({std::string("/") + name, std::vector<int64_t>(dims.begin(), dims.end()),
                       dtype_name(type.get())});
    return 0;
  };
  H5Lvisit(f.get(), H5_INDEX_NAME, H5_ITER_INC, visit, &ctx);
  return out;
}

}  // namespace shardtune::io
