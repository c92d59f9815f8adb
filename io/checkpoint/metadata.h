// The metadata checksum of format 3 (internal to io/checkpoint; free of LibTorch): the root
// attribute `metadata_checksum`, one fnv1a64x4 (base/hash.h) over every root attribute and every
// dataset's path, shape, dtype, piece attributes and piece checksums, so that no metadata changes
// unnoticed. docs/checkpoint-format.md gives the canonical text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint/info.h"

namespace shardtune::io {

// What the metadata checksum covers of one dataset.
struct DatasetMeta {
  std::string path;             // "/model/lm_head.weight"
  std::vector<int64_t> shape;   // global shape
  std::string dtype;            // h5::type_name form: "float32", "uint8", ...
  int64_t dim = -1, parts = 1, chunk = 0;  // shard_dim, shard_parts, shard_chunk
  std::vector<uint64_t> sums;   // `checksums`
};

// The root attribute name.
inline constexpr const char* kMetadataChecksum = "metadata_checksum";

// fnv1a64x4 of the canonical text: every field of `info` its format has, in fields() order, as
// name=<bytes>:<value>; then the datasets sorted by path, each as
// path=<bytes>:<path>;shape=a,b;dtype=..;dim=..;parts=..;chunk=..;sums=s0,s1,;
// Order of `datasets` does not matter.
uint64_t metadata_checksum(const CheckpointInfo& info, std::vector<DatasetMeta> datasets);

}  // namespace shardtune::io
