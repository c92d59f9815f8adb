// Tensor access shared by the fused operators' files (internal to core/kernels): checks, bf16
// element access and the [rows, n] view the row-wise kernels work on.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/kernels/cpu_kernels.h"

namespace shardtune::kernels::detail {

// Rows per parallel task: enough work per task to amortise the OpenMP hand-off.
inline int64_t grain_rows(int64_t row_len) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, row_len));
}

inline void check_float_or_bf16(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), what, ": fused kernels run on CPU tensors");
  TORCH_CHECK(t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kBFloat16, what,
              ": expected float32 or bfloat16, got ", t.scalar_type());
}

inline float bf16_value(bf16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline bf16_t* bf16_ptr(const torch::Tensor& t) {
  return reinterpret_cast<bf16_t*>(t.data_ptr<at::BFloat16>());
}

// Rows of a tensor whose last dim has stride 1: collapses the leading dims to [rows, n] when
// they are contiguous among themselves, else makes them so (one copy).
inline torch::Tensor as_rows(const torch::Tensor& t) {
  TORCH_CHECK(t.dim() >= 1, "fused kernel: scalar input");
  auto c = t.stride(-1) == 1 ? t : t.contiguous();
  auto r = c.reshape({-1, c.size(-1)});
  if (r.stride(-1) != 1 || (r.size(0) > 1 && r.stride(0) != r.size(1))) r = r.contiguous();
  return r;
}

}  // namespace shardtune::kernels::detail
