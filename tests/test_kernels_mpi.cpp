// The fused cross-entropy on a TP-sharded vocabulary (mpiexec -np 2 and -np 4, the TP group is the
// world): loss and logit gradients of each rank's shard against the unsharded loss computed on
// every rank from the same full logits. The vocabulary (1003) does not divide by the TP size, so
// the last shard has padding columns. Tolerance: the shards' sums of exponentials are rescaled to
// the global maximum and added across ranks, a different summation order than one rank's: 2e-6
// relative to the largest value (fp32).
#include <gtest/gtest.h>

#include "core/kernels/fused_ops.h"
#include "core/loss.h"
#include "core/shard.h"
#include "mpi_test_main.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"

using namespace shardtune;

namespace {

torch::Tensor shared_randn(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::normal(0.0, 3.0, shape, gen, torch::TensorOptions().dtype(torch::kFloat));
}

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double rel, const char* what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double err = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
  const double scale = b.abs().max().item<double>();
  EXPECT_LE(err, rel * scale + 1e-12) << what << ": max error " << err << " (scale " << scale << ")";
}

}  // namespace

TEST(FusedCrossEntropyTp, ShardsEqualTheFullVocabularyLossAndGradient) {
  auto& mpi = shardtune::testing::mpi_runtime();
  auto grid = parallel::RankGrid::create(mpi.world(), mpi.world_size());
  const int tp = mpi.world_size(), rank = mpi.rank();
  const int64_t B = 2, T = 9, V = 1003;
  auto spec = core::split_spec({V, 16}, 0, rank, tp);  // the embedding's vocabulary split
  const int64_t chunk = spec.local_shape()[0];
  auto full = shared_randn({B, T, V}, 7);
  auto labels = torch::randint(0, V, {B, T}, at::detail::createCPUGenerator(8), torch::kLong);
  labels[1][4] = -100;
  // Reference on the full vocabulary.
  auto full_leaf = full.clone().requires_grad_();
  auto ref = core::causal_lm_loss(full_leaf, labels);
  auto g_ref = torch::autograd::grad({ref.sum}, {full_leaf})[0];
  // This rank's columns, padded to the chunk width with garbage the kernel must ignore.
  auto local = torch::full({B, T, chunk}, 1e4f);
  local.narrow(2, 0, spec.length).copy_(full.narrow(2, spec.offset, spec.length));
  local.requires_grad_();
  auto per_row = kernels::fused_cross_entropy(local, kernels::next_token_targets(labels),
                                              spec.offset, spec.length, grid.tp_ptr().get());
  expect_close(per_row.sum(), ref.sum, 2e-6, "loss");
  auto g = torch::autograd::grad({per_row.sum()}, {local})[0];
  expect_close(g.narrow(2, 0, spec.length), g_ref.narrow(2, spec.offset, spec.length), 2e-6,
               "d logits of this shard");
  EXPECT_EQ(g.narrow(2, spec.length, chunk - spec.length).abs().sum().item<float>(), 0.0f);
}
