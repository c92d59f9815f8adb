// Inspection without reading tensor data: the dataset list (`shardtune ckpt inspect`) and the
// content digest that base-model references record. Both go through open_checkpoint (verify.h),
// so they see only validated, checksummed metadata.
#include <cstdio>

#include "base/hash.h"
#include "io/checkpoint.h"
#include "io/checkpoint/verify.h"

namespace shardtune::io {

namespace {
// "replicated", or "dim 0 in 2 pieces (3 parts)".
std::string sharding_of(const StoredMeta& d) {
  if (d.pieces.dim < 0) return "replicated";
  return "dim " + std::to_string(d.pieces.dim) + " in " + std::to_string(d.pieces.count) +
         " pieces" + (d.pieces.parts > 1 ? " (" + std::to_string(d.pieces.parts) + " parts)" : "");
}
}  // namespace

std::vector<TensorEntry> list_checkpoint_tensors(const std::string& file) {
  const OpenedCheckpoint ck = open_checkpoint(file);
  std::vector<TensorEntry> out;
  for (const auto& d : ck.datasets) {
    out.push_back({d.meta.path, d.meta.shape, d.meta.dtype, sharding_of(d)});
  }
  return out;
}

std::string checkpoint_digest(const std::string& file) {
  // Defined over paths, shapes, dtypes and stored checksums (unchanged since format 1, so that
  // base references recorded by older files still match).
  const OpenedCheckpoint ck = open_checkpoint(file);
  std::string text;
  for (const auto& d : ck.datasets) {
    text += d.meta.path + c10::str(c10::IntArrayRef(d.meta.shape)) + d.meta.dtype;
    if (d.format1) {
      text += std::to_string(d.fnv1a64);
    } else {
      for (auto v : d.meta.sums) text += std::to_string(v) + ",";
    }
    text += ";";
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx",
                static_cast<unsigned long long>(base::fnv1a64(text, base::kShardTuneFnvBasis)));
  return hex;
}

std::string checkpoint_identity(const std::string& file) {
  // The digest plus every root attribute: two files with the same identity hold the same
  // metadata and tensors.
  const OpenedCheckpoint ck = open_checkpoint(file);
  std::vector<DatasetMeta> metas;
  for (const auto& d : ck.datasets) metas.push_back(d.meta);
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx",
                static_cast<unsigned long long>(metadata_checksum(ck.info, metas)));
  return checkpoint_digest(file) + "-" + hex;
}

}  // namespace shardtune::io
