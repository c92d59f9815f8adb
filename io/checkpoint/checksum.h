// Checksums of checkpoint pieces. Format 2 stores one fnv1a64x4 (base/hash.h) per piece, computed
// by the piece's writer from its in-memory bytes and verified by whoever reads the piece; format 1
// stored one byte-wise FNV-1a 64 (basis kShardTuneFnvBasis) of the whole tensor in `fnv1a64`.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace shardtune::io {

// fnv1a64x4 of a tensor's bytes in C order (a non-contiguous tensor is made contiguous first).
uint64_t tensor_checksum(const torch::Tensor& tensor);
// Format 1's checksum of a contiguous tensor's bytes.
uint64_t format1_checksum(const torch::Tensor& tensor);

}  // namespace shardtune::io
