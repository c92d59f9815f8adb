#include "io/checkpoint/checksum.h"

#include "base/hash.h"

namespace shardtune::io {

uint64_t tensor_checksum(const torch::Tensor& tensor) {
  auto t = tensor.contiguous();
  return base::fnv1a64x4(t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size());
}

uint64_t format1_checksum(const torch::Tensor& tensor) {
  const auto bytes = static_cast<size_t>(tensor.numel()) * tensor.element_size();
  return base::fnv1a64(tensor.data_ptr(), bytes, base::kShardTuneFnvBasis);
}

}  // namespace shardtune::io
