// Shared by the tensor-parallel tests (test_tp.cpp, test_tp_models.cpp).
//
// Tolerances: values that involve no floating-point arithmetic across a split (collective data
// movement, embedding lookups, initialisation) are compared exactly (torch::equal); anything that
// passed through a cross-rank sum (all-reduce of partial products, the vocab-parallel softmax sums)
// or a GEMM of a different shape differs from the one-rank result only in float summation order,
// so it is compared within kRel relative to the tensor's largest value (fp32). Parameters after
// 10 training steps use expect_trained_close (1e-5 relative in norm; see there why).
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <string>
#include <vector>

#include "mpi_test_main.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"
#include "parallel/tp_ops.h"

namespace shardtune::testing {

inline constexpr double kRel = 1e-5;

// TP group = the whole world.
struct WorldTp {
  parallel::RankGrid grid =
      parallel::RankGrid::create(mpi_runtime().world(), mpi_runtime().world_size());
  parallel::TpGroup tp{grid.tp_ptr()};
};

inline void expect_close(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double err = (a - b).abs().max().item<double>();
  const double scale = b.abs().max().item<double>();
  EXPECT_LE(err, kRel * scale + 1e-7)
      << what << ": max error " << err << " (scale " << scale << ") at flat index "
      << (a - b).abs().argmax().item<int64_t>() << " of " << a.numel();
}

// The same random tensor on every rank.
inline torch::Tensor shared_randn(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::normal(0.0, 1.0, shape, gen, torch::TensorOptions().dtype(torch::kFloat));
}

}  // namespace shardtune::testing
