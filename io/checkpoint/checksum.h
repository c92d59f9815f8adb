// Checksums of checkpoint pieces (and, through metadata.h, of the metadata). Format 2 and 3 store one fnv1a64x4 (base/hash.h) per
// piece, computed by the piece's writer from its in-memory bytes and verified by whoever reads the
// piece; format 1 stored one byte-wise FNV-1a 64 (basis kShardTuneFnvBasis) of the whole tensor in
// `fnv1a64`. Format 3 adds `metadata_checksum` (root attribute): one fnv1a64x4 over every root
// attribute and every dataset's path, shape, dtype, piece attributes and piece checksums, so no
// metadata can change unnoticed (docs/checkpoint-format.md gives the canonical text).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint/metadata.h"

namespace shardtune::io {

// fnv1a64x4 of a tensor's bytes in C order (a non-contiguous tensor is made contiguous first).
uint64_t tensor_checksum(const torch::Tensor& tensor);
// Format 1's checksum of a contiguous tensor's bytes.
uint64_t format1_checksum(const torch::Tensor& tensor);

}  // namespace shardtune::io
