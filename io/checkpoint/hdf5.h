// HDF5 plumbing of the checkpoint package (internal to io/; free of LibTorch): RAII handles,
// scalar and array attributes, groups, dataspaces and type names. Every function reports failure by its return value
// or a UserError naming `where`; HDF5's own error printing is off (one line per problem, ours).
#pragma once

#include <hdf5.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "base/reading.h"
#include "io/checkpoint/geometry.h"

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

// Set when an H5Fclose through a Handle failed (io::hdf5_close_failed()).
extern std::atomic<bool> g_file_close_failed;

// A standard IEEE float (32/64-bit) or integer (8..64-bit) of either byte order: every bit of its
// size holds the value, no offset, no custom exponent or padding. HDF5 converts other numeric
// types (e.g. an 8-byte integer with 3 bits of precision at offset 61) through code paths that
// crash libhdf5 1.10 on crafted files, so readers refuse them before converting anything.
bool plain_number(hid_t type);

// "float32", "int64", "uint8", ...: a dataset's stored type (dtypes.h names tensor dtypes alike);
// "other" for anything that is not a plain_number.
std::string type_name(hid_t type);

// Attributes. Writers return false on failure (collective callers collect, then agree).
bool write_string_attr(hid_t obj, const char* name, const std::string& value);
bool write_int_attr(hid_t obj, const char* name, int64_t value);
bool write_u64_attr(hid_t obj, const char* name, uint64_t value);
bool write_u64_array_attr(hid_t obj, const char* name, const std::vector<uint64_t>& values);
bool has_attr(hid_t obj, const char* name);

// Readers. The file is hostile: every reader goes through one checked open that validates the
// attribute's type class (integer or fixed-length string), its dataspace (scalar or one element
// for scalars, rank 1 with exactly `count` elements for arrays) and its byte size against the
// buffer before anything is read. Anything else is a UserError naming `where` and the attribute.
inline constexpr size_t kMaxStringAttrBytes = size_t{16} << 20;  // 16 MiB
std::string read_string_attr(hid_t obj, const char* name, const std::string& where,
                             size_t max_bytes = kMaxStringAttrBytes);
int64_t read_int_attr(hid_t obj, const char* name, const std::string& where);
uint64_t read_u64_attr(hid_t obj, const char* name, const std::string& where);
// Exactly `count` elements (the caller knows how many there must be; at most 2^20).
std::vector<uint64_t> read_u64_array_attr(hid_t obj, const char* name, const std::string& where,
                                          int64_t count);
// The number of elements of a rank-1 integer attribute (checked as above; at most 2^20).
int64_t u64_array_attr_size(hid_t obj, const char* name, const std::string& where);

// Creates the intermediate groups of `path` ("/a/b/c" -> /a, /a/b). Collective in parallel HDF5:
// every rank calls it with the same paths in the same order.
bool ensure_groups(hid_t file, const std::string& path);
// Whether every component of `path` exists as a hard link (soft and external links: false).
bool path_exists(hid_t file, const std::string& path);

// A dataspace of `shape` (scalar for an empty shape).
Handle simple_space(const std::vector<int64_t>& shape);
// The dataset's shape.
std::vector<int64_t> dataset_shape(hid_t dataset);
// Selects `slab` in `space` (all of it when slab.whole).
bool select(hid_t space, const Hyperslab& slab);

// A file open for reading: while it is open, a fault names it (base/reading.h). `reading` is
// declared first so that it outlives the handle's close.
struct ReadFile {
  base::ReadingFile reading;
  Handle handle{-1, H5Fclose};
  hid_t get() const { return handle.get(); }
};

// Opens a checkpoint file read-only with the serial driver; UserError naming the file otherwise.
ReadFile open_for_read(const std::string& file);

}  // namespace shardtune::io::h5
