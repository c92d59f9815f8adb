// RankGrid over MPI (communicator splits), MpiRuntime's view of the job, and the NCCL
// communicator when GPUs are present; run under mpiexec -np 2 and -np 4 with the collectives.
#include <gtest/gtest.h>
#include <mpi.h>

#include <torch/torch.h>

#include "collectives_fixture.h"
#include "launch/bootstrap.h"
#include "mpi_test_main.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"
#ifdef SHARDTUNE_HAVE_NCCL
#include "parallel/nccl_communicator.h"
#endif

namespace shardtune::parallel {
namespace {

TEST_F(Collectives, SplitMakesOrderedSubgroups) {
  // Parity groups, ordered by descending world rank.
  auto sub = world_->split(r_ % 2, -r_, "parity");
  ASSERT_TRUE(sub);
  const int members = (n_ + 1 - r_ % 2) / 2;
  EXPECT_EQ(sub->size(), members);
  EXPECT_EQ(sub->label(), "parity");
  std::vector<int> expected_ranks;
  for (int w = n_ - 1; w >= 0; --w) {
    if (w % 2 == r_ % 2) expected_ranks.push_back(w);
  }
  EXPECT_EQ(sub->world_ranks(), expected_ranks);
  EXPECT_EQ(expected_ranks[sub->rank()], r_);
  torch::Tensor t = torch::full({3}, static_cast<double>(r_));
  sub->all_reduce(t);
  double sum = 0;
  for (int w : expected_ranks) sum += w;
  EXPECT_TRUE(torch::equal(t, torch::full({3}, sum)));
  // Root 0 of the subgroup is its highest world rank.
  torch::Tensor b = torch::full({2}, static_cast<double>(r_));
  sub->broadcast(b, 0);
  EXPECT_TRUE(torch::equal(b, torch::full({2}, static_cast<double>(expected_ranks[0]))));
  // A negative color joins no group.
  auto none = world_->split(r_ == 0 ? -1 : 0, r_, "all-but-0");
  EXPECT_EQ(none == nullptr, r_ == 0);
  if (none) {
    EXPECT_EQ(none->size(), n_ - 1);
  }
}

TEST_F(Collectives, RankGridOverMpiMatchesTheGridMath) {
  for (int tp : valid_tp_values(n_)) {
    SCOPED_TRACE("tp=" + std::to_string(tp));
    RankGrid grid = RankGrid::create(world_, tp);
    const ParallelDims dims = grid.dims();
    EXPECT_EQ(grid.tp().size(), tp);
    EXPECT_EQ(grid.dp().size(), n_ / tp);
    EXPECT_EQ(grid.tp().rank(), coord_of(r_, dims).tp_rank);
    EXPECT_EQ(grid.dp().rank(), coord_of(r_, dims).dp_rank);
    // Gathering world ranks over each axis lists the group in coordinate order.
    auto members = [&](Communicator& comm) {
      torch::Tensor me = torch::full({1}, r_, torch::kInt);
      torch::Tensor all = torch::empty({comm.size()}, torch::kInt);
      comm.all_gather(all, me);
      std::vector<int> ranks(all.data_ptr<int>(), all.data_ptr<int>() + all.numel());
      return ranks;
    };
    EXPECT_EQ(members(grid.tp()), tp_group_ranks(r_, dims));
    EXPECT_EQ(members(grid.dp()), dp_group_ranks(r_, dims));
    EXPECT_EQ(grid.tp().backend(), tp == 1 ? "local" : "mpi");
    EXPECT_EQ(grid.dp().backend(), tp == n_ ? "local" : "mpi");
  }
}

TEST_F(Collectives, RuntimeDescribesOneNode) {
  EXPECT_EQ(shardtune::testing::mpi_runtime().rank(), r_);
  EXPECT_EQ(shardtune::testing::mpi_runtime().world_size(), n_);
  EXPECT_EQ(shardtune::testing::mpi_runtime().local_size(), n_);  // ctest runs every rank on this machine
  EXPECT_EQ(shardtune::testing::mpi_runtime().local_rank(), r_);
  EXPECT_EQ(shardtune::testing::mpi_runtime().num_nodes(), 1);
  EXPECT_EQ(shardtune::testing::mpi_runtime().node_of_rank(), std::vector<int>(n_, 0));
  EXPECT_GE(shardtune::testing::mpi_runtime().threads(), 1);
  EXPECT_GE(static_cast<int>(shardtune::testing::mpi_runtime().provided()),
            static_cast<int>(launch::ThreadLevel::kSerialized));
  EXPECT_EQ(tp_span_warning(make_dims(n_, n_), shardtune::testing::mpi_runtime().node_of_rank()), "");
}

TEST_F(Collectives, NcclCommunicatorOnGpus) {
#ifndef SHARDTUNE_HAVE_NCCL
  GTEST_SKIP() << "built without NCCL";
#else
  // Same decision on every rank (collective construction below).
  const bool usable = torch::cuda::is_available() &&
                      static_cast<int>(torch::cuda::device_count()) >= shardtune::testing::mpi_runtime().local_size();
  if (!usable) GTEST_SKIP() << "needs one CUDA device per local rank";
  NcclCommunicator nccl(world_, shardtune::testing::mpi_runtime().local_rank(), "world");
  const auto opts = torch::TensorOptions().device(torch::kCUDA, nccl.device());
  torch::Tensor t = torch::full({1 << 20}, r_ + 1, opts);
  nccl.all_reduce(t, ReduceOp::kSum);
  EXPECT_TRUE(torch::equal(t.cpu(), torch::full({1 << 20}, static_cast<double>(triangle()))));
  torch::Tensor avg = torch::full({7}, r_ + 1, opts.dtype(torch::kBFloat16));
  nccl.all_reduce(avg, ReduceOp::kAvg);
  EXPECT_TRUE(torch::equal(avg.cpu(), torch::full({7}, (n_ + 1) / 2.0, torch::kBFloat16)));
  torch::Tensor in = torch::full({2, 3}, r_ + 1, opts);
  torch::Tensor out = torch::zeros({3, 2 * n_}, opts).t();  // non-contiguous
  nccl.all_gather(out, in);
  torch::Tensor out_cpu = out.cpu().reshape(-1);
  for (int i = 0; i < n_; ++i) {
    EXPECT_TRUE(torch::equal(out_cpu.narrow(0, 6 * i, 6), torch::full({6}, i + 1.0))) << i;
  }
  torch::Tensor rs_in = torch::arange(n_ * 4, opts) * (r_ + 1);
  torch::Tensor rs_out = torch::empty({4}, opts);
  WorkPtr work = nccl.reduce_scatter_async(rs_out, rs_in, ReduceOp::kMax);
  wait_by_polling(work);
  EXPECT_TRUE(torch::equal(rs_out.cpu(), torch::arange(r_ * 4, r_ * 4 + 4, torch::kFloat) * n_));
  torch::Tensor b = torch::full({5}, r_ == n_ - 1 ? 9.0 : 0.0, opts);
  nccl.broadcast(b, n_ - 1);
  EXPECT_TRUE(torch::equal(b.cpu(), torch::full({5}, 9.0)));
  torch::Tensor cpu = torch::ones({2});
  EXPECT_THROW(nccl.all_reduce(cpu), CommunicationError);
  nccl.barrier();
  // A grid of NCCL axes: the TP all-reduce sums over the TP group only.
  const int tp = n_ % 2 == 0 ? 2 : 1;
  RankGrid grid(std::make_shared<NcclCommunicator>(world_, nccl.device(), "world"), tp,
                nccl_split_fn(world_, nccl.device()));
  torch::Tensor g = torch::full({3}, r_, opts);
  grid.tp().all_reduce(g);
  double expected = 0;
  for (int m : tp_group_ranks(r_, grid.dims())) expected += m;
  EXPECT_TRUE(torch::equal(g.cpu(), torch::full({3}, expected)));
#endif
}

}  // namespace
}  // namespace shardtune::parallel
