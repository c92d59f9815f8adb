// HDF5 plumbing of the checkpoint package (internal to io/): RAII handles, scalar and array
// attributes, groups, dataspaces and dtypes. Every function reports failure by its return value
// or a UserError naming `where`; HDF5's own error printing is off (one line per problem, ours).
#pragma once

#include <hdf5.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint/pieces.h"

namespace shardtune::io::h5 {

// RAII for an hid_t and its close function.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() { reset(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }
  // Closes now; false when the close failed (for files: data may not have reached the disk).
  bool reset();

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// The file type of a tensor dtype (float32/64, int32/64, uint8); UserError for others.
hid_t file_type(torch::ScalarType dtype);
// "float32", "int64", "uint8", ...: a dataset's stored type, and a tensor dtype, in one naming.
std::string type_name(hid_t type);
std::string dtype_name(torch::ScalarType dtype);

// Attributes. Writers return false on failure (collective callers collect, then agree).
bool write_string_attr(hid_t obj, const char* name, const std::string& value);
bool write_int_attr(hid_t obj, const char* name, int64_t value);
bool write_u64_array_attr(hid_t obj, const char* name, const std::vector<uint64_t>& values);
bool has_attr(hid_t obj, const char* name);
std::string read_string_attr(hid_t obj, const char* name, const std::string& where);
int64_t read_int_attr(hid_t obj, const char* name, const std::string& where);
uint64_t read_u64_attr(hid_t obj, const char* name, const std::string& where);
std::vector<uint64_t> read_u64_array_attr(hid_t obj, const char* name, const std::string& where);

// Creates the intermediate groups of `path` ("/a/b/c" -> /a, /a/b). Collective in parallel HDF5:
// every rank calls it with the same paths in the same order.
bool ensure_groups(hid_t file, const std::string& path);
// Whether every component of `path` exists.
bool path_exists(hid_t file, const std::string& path);

// A dataspace of `shape` (scalar for an empty shape).
Handle simple_space(const std::vector<int64_t>& shape);
// The dataset's shape.
std::vector<int64_t> dataset_shape(hid_t dataset);
// Selects `slab` in `space` (all of it when slab.whole).
bool select(hid_t space, const Hyperslab& slab);

// Opens a checkpoint file read-only with the serial driver; UserError naming the file otherwise.
Handle open_for_read(const std::string& file);

}  // namespace shardtune::io::h5
