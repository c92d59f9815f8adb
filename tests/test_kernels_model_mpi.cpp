// Block recomputation across ranks (mpiexec -np 2; the fused kernels' TP parity is in
// tests/test_kernels_mpi.cpp):
//   - DP = 2 and TP = 2, training through the Trainer with dropout, SFT and LoRA: [train]
//     recompute = block gives bitwise the losses and parameters of recompute = none. Under DP this
//     also checks that recomputation fires each parameter's gradient-ready hook once (the
//     bucketed gradient sync launches a bucket when its count reaches zero).
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include "core/loss.h"
#include "core/model.h"
#include "mpi_test_main.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"
#include "train_helpers.h"

using namespace shardtune;
using namespace shardtune::testing;

namespace {

void expect_rel(const torch::Tensor& a, const torch::Tensor& b, double rel, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double err = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
  const double scale = b.abs().max().item<double>();
  EXPECT_LE(err, rel * scale + 1e-12) << what << ": max error " << err << " (scale " << scale << ")";
}

launch::Config recompute_config(const std::string& name, int tp) {
  auto c = tiny_config(temp_dir(name + "_r" + std::to_string(mpi_runtime().rank())));
  c.model.dropout = 0.1;
  c.parallel.tp = tp;
  c.train.global_batch = 8;
  c.train.micro_batch = tp == 1 ? 2 : 4;  // DP = 2: two micro-batches per rank, accumulation too
  c.parallel.bucket_mb = 0.01;            // several buckets: each must wait for all its gradients
  c.train.steps = 6;
  return c;
}

void expect_recompute_bitwise(launch::Config c, int tp) {
  auto grid = parallel::RankGrid::create(mpi_runtime().world(), tp);
  launch::Trainer plain(c, grid);
  const auto a = plain.train();
  c.train.recompute = "block";
  c.train.out_dir += "_block";
  launch::Trainer again(c, grid);
  const auto b = again.train();
  EXPECT_EQ(a, b);
  auto pa = plain.model().named_parameters(), pb = again.model().named_parameters();
  for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}

}  // namespace

TEST(RecomputeDp, SftWithDropoutBitwiseAtDp2) {
  expect_recompute_bitwise(recompute_config("rc_sft_dp", 1), 1);
}

TEST(RecomputeDp, LoraBitwiseAtDp2) {
  auto c = recompute_config("rc_lora_dp", 1);
  c.strategy = "lora";
  c.strategy_options = {{"target_modules", "all-linear"}};
  expect_recompute_bitwise(c, 1);
}

TEST(RecomputeTp, SftWithDropoutBitwiseAtTp2) {
  expect_recompute_bitwise(recompute_config("rc_sft_tp", 2), 2);
}
