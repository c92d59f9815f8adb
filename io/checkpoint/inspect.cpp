// Inspection without reading tensor data: the dataset list (`shardtune ckpt inspect`) and the
// content digest that base-model references record.
#include <cstdio>

#include "base/hash.h"
#include "io/checkpoint.h"
#include "io/checkpoint/hdf5.h"

namespace shardtune::io {

namespace {
using h5::Handle;

// "replicated", or "dim 0 in 2 pieces (3 parts)", from a dataset's piece attributes.
std::string sharding_of(hid_t dataset, const std::string& where) {
  if (!h5::has_attr(dataset, "shard_dim")) return "replicated";
  const int64_t dim = h5::read_int_attr(dataset, "shard_dim", where);
  if (dim < 0) return "replicated";
  const int64_t parts = h5::read_int_attr(dataset, "shard_parts", where);
  return "dim " + std::to_string(dim) + " in " +
         std::to_string(h5::read_u64_array_attr(dataset, "checksums", where).size()) + " pieces" +
         (parts > 1 ? " (" + std::to_string(parts) + " parts)" : "");
}
}  // namespace

std::vector<TensorEntry> list_checkpoint_tensors(const std::string& file) {
  Handle f = h5::open_for_read(file);
  std::vector<TensorEntry> out;
  // Link visiting with the unversioned names works on HDF5 1.10 and 1.12+ alike.
  auto visit = [](hid_t group, const char* name, const H5L_info_t*, void* data) -> herr_t {
    Handle obj(H5Oopen(group, name, H5P_DEFAULT), H5Oclose);
    if (!obj.ok() || H5Iget_type(obj.get()) != H5I_DATASET) return 0;
    Handle type(H5Dget_type(obj.get()), H5Tclose);
    static_cast<std::vector<TensorEntry>*>(data)->push_back(
        {std::string("/") + name, h5::dataset_shape(obj.get()), h5::type_name(type.get()),
         sharding_of(obj.get(), name)});
    return 0;
  };
  H5Lvisit(f.get(), H5_INDEX_NAME, H5_ITER_INC, visit, &out);
  return out;
}

std::string checkpoint_digest(const std::string& file) {
  Handle f = h5::open_for_read(file);
  std::string text;
  for (const auto& e : list_checkpoint_tensors(file)) {
    text += e.path + c10::str(c10::IntArrayRef(e.shape)) + e.dtype;
    Handle ds(H5Dopen2(f.get(), e.path.c_str(), H5P_DEFAULT), H5Dclose);
    if (h5::has_attr(ds.get(), "checksums")) {
      for (auto v : h5::read_u64_array_attr(ds.get(), "checksums", file)) {
        text += std::to_string(v) + ",";
      }
    } else if (h5::has_attr(ds.get(), "fnv1a64")) {
      text += std::to_string(h5::read_u64_attr(ds.get(), "fnv1a64", file));
    }
    text += ";";
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx",
                static_cast<unsigned long long>(base::fnv1a64(text, base::kShardTuneFnvBasis)));
  return hex;
}

}  // namespace shardtune::io
