// The reader's metadata path (verify.h): free of LibTorch, fuzzed by tests/fuzz/fuzz_checkpoint.cpp.
#include "io/checkpoint/verify.h"

#include <type_traits>

#include "base/errors.h"
#include "base/strings.h"

namespace shardtune::io {

namespace {

using h5::Handle;

// Format 1 wrote `fnv1a64` on every dataset; 2 and 3 the piece attributes and `checksums`.
StoredMeta read_stored_meta_impl(hid_t ds, const std::string& path, const std::string& where,
                                 int64_t format_version) {
  StoredMeta m;
  m.meta.path = path;
  m.meta.shape = h5::dataset_shape(ds);
  Handle type(H5Dget_type(ds), H5Tclose);
  require(type.ok(), where + " has an unreadable type");
  m.meta.dtype = h5::type_name(type.get());
  if (format_version == 1) {
    m.format1 = true;
    m.fnv1a64 = h5::read_u64_attr(ds, "fnv1a64", where);  // missing: an error, not a skip
    return m;
  }
  m.meta.dim = h5::read_int_attr(ds, "shard_dim", where);
  m.meta.parts = h5::read_int_attr(ds, "shard_parts", where);
  m.meta.chunk = h5::read_int_attr(ds, "shard_chunk", where);
  require(pieces_from_attributes(m.meta.shape, m.meta.dim, m.meta.parts, m.meta.chunk, m.pieces),
          where + " has an invalid sharding description (shard_dim=" +
              std::to_string(m.meta.dim) + ", shard_parts=" + std::to_string(m.meta.parts) +
              ", shard_chunk=" + std::to_string(m.meta.chunk) + " for shape " +
              base::shape_string(m.meta.shape) + ")");
  const int64_t stored = h5::u64_array_attr_size(ds, "checksums", where);
  require(stored == m.pieces.count, where + " has " + std::to_string(stored) +
                                        " checksums for " + std::to_string(m.pieces.count) +
                                        " pieces");
  m.meta.sums = h5::read_u64_array_attr(ds, "checksums", where, m.pieces.count);
  return m;
}

// Root attributes, read through the checked readers and range-checked.
constexpr size_t kMaxMetadataText = size_t{1} << 20;  // 1 MiB per string field

CheckpointInfo read_info(hid_t f, const std::string& file) {
  CheckpointInfo info;
  info.format_version = h5::read_int_attr(f, "format_version", file);
  require(info.format_version >= 1 && info.format_version <= kCheckpointFormatVersion,
          file + ": checkpoint format version " + std::to_string(info.format_version) +
              " is not supported (this build reads 1 to " +
              std::to_string(kCheckpointFormatVersion) + ")");
  info.fields([&](const char* name, auto& value, int since) {
    if (since > info.format_version) return;
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::string>) {
      value = h5::read_string_attr(f, name, file, kMaxMetadataText);
    } else {
      value = h5::read_int_attr(f, name, file);
    }
  });
  if (info.format_version == 1) {
    info.optimizer_step = info.step;  // format 1 counted both together
    info.checksum_algorithm = "fnv1a64";
  }
  require(info.checksum_algorithm == kChecksumAlgorithm || info.format_version == 1,
          file + ": checksum algorithm '" + printable(info.checksum_algorithm) +
              "' is unknown (known: " + kChecksumAlgorithm + ")");
  validate_info(file, info);
  return info;
}

}  // namespace

StoredMeta read_stored_meta(hid_t ds, const std::string& path, const std::string& where,
                            int64_t format_version) {
  return read_stored_meta_impl(ds, path, where, format_version);
}

OpenedCheckpoint open_checkpoint(const std::string& file) {
  OpenedCheckpoint ck;
  ck.file = h5::open_for_read(file);
  ck.info = read_info(ck.file.get(), file);
  struct Visit {
    const std::string* file;
    int64_t version;
    std::vector<StoredMeta>* out;
    std::string error;
  } visit{&file, ck.info.format_version, &ck.datasets, {}};
  // Only hard links: a soft or external link could lead out of the file. Exceptions must not
  // cross HDF5's C frames, so the callback records the first error and stops the walk.
  auto cb = [](hid_t group, const char* name, const H5L_info_t* link, void* data) -> herr_t {
    auto& v = *static_cast<Visit*>(data);
    try {
      const std::string where = *v.file + ": /" + printable(name);
      if (link->type != H5L_TYPE_HARD) {
        v.error = where + " is a soft or external link (not written by ShardTune)";
        return -1;
      }
      Handle obj(H5Oopen(group, name, H5P_DEFAULT), H5Oclose);
      if (!obj.ok()) {
        v.error = where + " cannot be opened (corrupted file?)";
        return -1;
      }
      const H5I_type_t kind = H5Iget_type(obj.get());
      if (kind == H5I_GROUP) return 0;
      if (kind != H5I_DATASET) {
        v.error = where + " is neither a group nor a dataset";
        return -1;
      }
      v.out->push_back(read_stored_meta_impl(obj.get(), std::string("/") + name,
                                             *v.file + ": tensor /" + printable(name),
                                             v.version));
    } catch (const std::exception& e) {
      v.error = e.what();
      return -1;
    } catch (...) {
      v.error = *v.file + ": cannot list its datasets";
      return -1;
    }
    return 0;
  };
  const herr_t walked = H5Lvisit(ck.file.get(), H5_INDEX_NAME, H5_ITER_INC, cb, &visit);
  require(visit.error.empty(), visit.error);
  require(walked >= 0, file + ": cannot list its datasets (corrupted file?)");
  if (ck.info.format_version >= 3) {
    require(h5::has_attr(ck.file.get(), kMetadataChecksum),
            file + ": attribute '" + kMetadataChecksum +
                "' is missing: the metadata is unverifiable (corrupted or not a ShardTune file)");
    const uint64_t stored = h5::read_u64_attr(ck.file.get(), kMetadataChecksum, file);
    std::vector<DatasetMeta> metas;
    for (const auto& d : ck.datasets) metas.push_back(d.meta);
    require(metadata_checksum(ck.info, metas) == stored,
            file + ": metadata checksum mismatch: its attributes were changed after it was "
                   "written (the file is corrupted)");
  }
  return ck;
}

}  // namespace shardtune::io
