// Data parallelism under mpiexec -np 2 and -np 4: DP training equals one-rank training on the same
// global batch; accumulation under DP; overlapped bucket sync; sampler coverage.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/batch.h"
#include "mpi_test_main.h"
#include "parallel/grad_sync.h"
#include "parallel/local_communicator.h"
#include "parallel/mpi_communicator.h"
#include "train_helpers.h"

using namespace shardtune;
using namespace shardtune::testing;

namespace {

parallel::RankGrid world_grid(int tp = 1) {
  return parallel::RankGrid::create(mpi_runtime().world(), tp);
}

// Trains `c` on the DP grid of the whole world and, on every rank, the same config on one rank;
// losses and final parameters must agree to 1e-5 relative (fp32; only the summation order of the
// gradient all-reduce differs).
void expect_dp_equals_single(launch::Config c) {
  auto grid = world_grid();
  launch::Trainer dp(c, grid);
  const auto dp_losses = dp.train();
  auto single_grid = local_grid();
  launch::Trainer single(c, single_grid);
  const auto ref = single.train();
  ASSERT_EQ(dp_losses.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_NEAR(dp_losses[i], ref[i], 1e-5 * std::abs(ref[i])) << "step " << i + 1;
  }
  expect_parameters_close(dp.model(), single.model());
}

}  // namespace

TEST(DataParallel, TenStepsEqualOneRank) {
  const int world = mpi_runtime().world_size();
  auto c = tiny_config(temp_dir("dp_equal_r" + std::to_string(mpi_runtime().rank())));
  c.train.global_batch = 2 * world;
  c.train.micro_batch = 2;
  c.parallel.bucket_mb = 0.01;  // several buckets, so ordering and overlap are exercised
  expect_dp_equals_single(c);
}

TEST(DataParallel, AccumulationEqualsLargerBatch) {
  const int world = mpi_runtime().world_size();
  auto c = tiny_config(temp_dir("dp_accum_r" + std::to_string(mpi_runtime().rank())));
  c.train.global_batch = 4 * world;
  c.train.micro_batch = 1;  // 4 micro-steps per rank, only the last communicates
  expect_dp_equals_single(c);
}

TEST(DataParallel, RealTextWithPaddingEqualsOneRank) {
  // Uneven target counts per rank (WordNet glosses, right padding): the global-count
  // normalisation must still make DP equal one rank.
  const int world = mpi_runtime().world_size();
  auto c = tiny_config(temp_dir("dp_text_r" + std::to_string(mpi_runtime().rank())));
  c.data.source = "wordnet";
  c.data.max_eval_samples = 16;
  c.train.global_batch = 2 * world;
  c.train.micro_batch = 1;
  c.train.steps = 6;
  expect_dp_equals_single(c);
}

TEST(GradSync, BucketsLaunchDuringBackwardAndSum) {
  auto& world = *mpi_runtime().world();
  const int n = world.size();
  auto a = torch::zeros({64, 32}, torch::requires_grad());
  auto b = torch::zeros({32}, torch::requires_grad());
  auto c = torch::zeros({16, 8}, torch::requires_grad());
  parallel::GradSync sync({a, b, c}, world, /*bucket_bytes=*/600);
  EXPECT_GE(sync.num_buckets(), 3);
  const double r = world.rank() + 1;
  // Grad of sum(x * k) is k everywhere.
  ((a * r).sum() + (b * 2 * r).sum() + (c * 3 * r).sum()).backward();
  sync.finish();
  const double total = n * (n + 1) / 2.0;
  EXPECT_TRUE(torch::allclose(a.grad(), torch::full_like(a, total)));
  EXPECT_TRUE(torch::allclose(b.grad(), torch::full_like(b, 2 * total)));
  EXPECT_TRUE(torch::allclose(c.grad(), torch::full_like(c, 3 * total)));
  EXPECT_EQ(sync.launched_during_backward(), sync.num_buckets());
  // Accumulation: a no-sync backward adds locally, the synced one communicates the sum.
  sync.zero_grad();
  sync.set_sync(false);
  (a * r).sum().backward();
  EXPECT_TRUE(torch::allclose(a.grad(), torch::full_like(a, r)));
  sync.set_sync(true);
  (a * r).sum().backward();  // b and c unused: finish() still communicates them (zeros)
  sync.finish();
  EXPECT_TRUE(torch::allclose(a.grad(), torch::full_like(a, 2 * total)));
  EXPECT_TRUE(torch::allclose(b.grad(), torch::zeros_like(b)));
}

TEST(Sampler, RanksGetDisjointCompleteShares) {
  auto& world = *mpi_runtime().world();
  const int n = world.size();
  const int64_t global = 4 * n;
  core::DistributedSampler sampler(10 * global + 3, global, world.rank(), n, 99);
  for (int step = 0; step < 25; ++step) {  // crosses two epoch boundaries
    auto mine = torch::tensor(sampler.next(), torch::kLong);
    ASSERT_EQ(mine.numel(), 4);
    auto all = torch::empty({global}, torch::kLong);
    world.all_gather(all, mine);
    std::set<int64_t> unique(all.data_ptr<int64_t>(), all.data_ptr<int64_t>() + global);
    EXPECT_EQ(static_cast<int64_t>(unique.size()), global) << "step " << step;
    // Equal to what one rank would draw as the whole global batch.
    core::DistributedSampler single(10 * global + 3, global, 0, 1, 99);
    single.set_consumed_samples(step * global);
    auto expected = single.next();
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), all.data_ptr<int64_t>()));
  }
}

TEST(Zero1, EqualsPlainDataParallelWithShardedState) {
  const int world = mpi_runtime().world_size();
  auto c = tiny_config(temp_dir("zero_r" + std::to_string(mpi_runtime().rank())));
  c.train.global_batch = 2 * world;
  c.train.micro_batch = 1;
  c.train.weight_decay = 0.1;  // the decay mask (matrices only) must match plain AdamW
  c.train.grad_clip = 0.5;     // clipping from sharded gradient norms
  c.parallel.bucket_mb = 0.02;
  auto grid = world_grid();
  launch::Trainer plain(c, grid);
  const auto a = plain.train();
  c.parallel.zero = 1;
  launch::Trainer zero(c, grid);
  const auto b = zero.train();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * std::abs(a[i])) << i;
  expect_parameters_close(zero.model(), plain.model());
  // Optimizer state per rank is 1/dp of the full state, up to bucket padding (< dp elements per
  // bucket, 8 bytes each).
  const int64_t full = plain.optimizer_state_bytes();
  const int64_t sharded = zero.optimizer_state_bytes();
  EXPECT_LE(sharded, full / world + 8 * world * 64);
  EXPECT_GE(sharded, full / world);
}

TEST(MpiEager, LargeReductionsTakeTheBlockingPathAndAreCorrect) {
  // From MpiOptions::eager_reduce_bytes on the MPI backend reduces with blocking calls; results
  // must be the same closed forms, in place, also for non-contiguous tensors and kAvg.
  auto& world = *mpi_runtime().world();
  ASSERT_GT(world.options().eager_reduce_bytes, 0);
  const int n = world.size();
  const double r = world.rank() + 1, total = n * (n + 1) / 2.0;
  const int64_t big = world.options().eager_reduce_bytes / 4 * 2;  // 2x the threshold
  auto t = torch::full({big}, r);
  auto work = world.all_reduce_async(t, parallel::ReduceOp::kSum);
  EXPECT_TRUE(work->is_completed());
  work->wait();
  EXPECT_TRUE(torch::equal(t, torch::full({big}, total)));
  auto m = torch::full({1024, big / 1024}, r).t();  // non-contiguous view
  world.all_reduce(m, parallel::ReduceOp::kAvg);
  EXPECT_TRUE(torch::allclose(m, torch::full_like(m, total / n)));
  auto in = torch::arange(big * n, torch::kFloat) * r;
  auto out = torch::empty({big});
  world.reduce_scatter(out, in, parallel::ReduceOp::kSum);
  auto expected = torch::arange(world.rank() * big, (world.rank() + 1) * big, torch::kFloat) * total;
  EXPECT_TRUE(torch::allclose(out, expected));
}
