// LocalCommunicator (a group of one) and the bootstrap's thread choice: single process, no MPI.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "base/errors.h"
#include "launch/bootstrap.h"
#include "parallel/local_communicator.h"

namespace shardtune::parallel {
namespace {

TEST(ParallelLocal, ReductionsOfOneAreIdentity) {
  LocalCommunicator comm;
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  EXPECT_EQ(comm.name(), "local:local");
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin}) {
    torch::Tensor t = torch::arange(6, torch::kFloat).view({2, 3});
    torch::Tensor expected = t.clone();
    WorkPtr work = comm.all_reduce_async(t, op);
    EXPECT_TRUE(work->is_completed());
    work->wait();
    EXPECT_TRUE(torch::equal(t, expected)) << to_string(op);
  }
  torch::Tensor ints = torch::arange(4, torch::kLong);
  comm.all_reduce(ints, ReduceOp::kMax);
  EXPECT_TRUE(torch::equal(ints, torch::arange(4, torch::kLong)));
}

TEST(ParallelLocal, GatherAndScatterCopyInToOut) {
  LocalCommunicator comm;
  torch::Tensor in = torch::arange(6, torch::kFloat).view({2, 3});
  torch::Tensor out = torch::zeros({2, 3});
  comm.all_gather(out, in);
  EXPECT_TRUE(torch::equal(out, in));
  // Non-contiguous out: a transposed view; the copy follows row-major order of out.
  torch::Tensor base = torch::zeros({3, 2});
  torch::Tensor view = base.t();
  comm.reduce_scatter(view, in);
  EXPECT_TRUE(torch::equal(view, in));
  // Shapes may differ as long as element counts match.
  torch::Tensor flat = torch::zeros({6});
  comm.all_gather(flat, in);
  EXPECT_TRUE(torch::equal(flat, in.reshape({6})));
  // In place (in is out).
  comm.all_gather(out, out);
  EXPECT_TRUE(torch::equal(out, in));
}

TEST(ParallelLocal, EmptyTensorsAndBroadcast) {
  LocalCommunicator comm;
  // Empty tensors: every collective completes at once and keeps shapes and dtypes...
  torch::Tensor empty = torch::empty({0});
  EXPECT_TRUE(comm.all_reduce_async(empty, ReduceOp::kSum)->is_completed());
  torch::Tensor out = torch::empty({0, 4});
  EXPECT_TRUE(comm.all_gather_async(out, empty)->is_completed());
  EXPECT_TRUE(comm.reduce_scatter_async(out, empty, ReduceOp::kSum)->is_completed());
  EXPECT_TRUE(comm.broadcast_async(empty, 0)->is_completed());
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({0, 4}));
  EXPECT_EQ(empty.sizes(), torch::IntArrayRef({0}));
  EXPECT_EQ(out.scalar_type(), torch::kFloat);
  // ...and arguments are still checked with nothing to move: 1 element is not 1 x 0.
  torch::Tensor one = torch::empty({1});
  EXPECT_THROW(comm.all_gather(one, empty), CommunicationError);
  EXPECT_THROW(comm.reduce_scatter(empty, one), CommunicationError);
  // Broadcast in a group of one keeps the values, in place (same storage), and only root 0 exists.
  torch::Tensor t = torch::arange(5, torch::kFloat) * 1.5;
  const float* data = t.data_ptr<float>();
  comm.broadcast(t, 0);
  EXPECT_EQ(t.data_ptr<float>(), data);
  EXPECT_TRUE(torch::equal(t, torch::arange(5, torch::kFloat) * 1.5));
  EXPECT_THROW(comm.broadcast(t, 1), CommunicationError);
  comm.barrier();
}

TEST(ParallelLocal, ChecksArgumentsLikeTheMultiRankBackends) {
  LocalCommunicator comm("tp");
  torch::Tensor t = torch::ones({3});
  torch::Tensor ints = torch::ones({3}, torch::kInt);
  EXPECT_THROW(comm.broadcast(t, 1), CommunicationError);
  EXPECT_THROW(comm.all_reduce(ints, ReduceOp::kAvg), CommunicationError);
  torch::Tensor four = torch::ones({4});
  EXPECT_THROW(comm.all_gather(four, t), CommunicationError);
  EXPECT_THROW(comm.reduce_scatter(t, four), CommunicationError);
  torch::Tensor doubles = torch::ones({3}, torch::kDouble);
  EXPECT_THROW(comm.all_gather(doubles, t), CommunicationError);
  try {
    comm.broadcast(t, 2);
    FAIL() << "no exception";
  } catch (const CommunicationError& e) {
    EXPECT_EQ(std::string(e.what()),
              "[parallel] broadcast on local:tp rank 0/1: root 2 is outside the group of 1");
  }
}

}  // namespace
}  // namespace shardtune::parallel

namespace shardtune::launch {
namespace {

TEST(LaunchThreads, BoundRanksUseTheirWholeMask) {
  EXPECT_EQ(choose_threads(1, 1, nullptr).threads, 1);
  EXPECT_EQ(choose_threads(4, 1, nullptr).threads, 4);
  EXPECT_EQ(choose_threads(4, 1, "").threads, 4);  // empty override = unset
}

TEST(LaunchThreads, UnboundRanksSplitTheNode) {
  EXPECT_EQ(choose_threads(2, 2, nullptr).threads, 1);
  EXPECT_EQ(choose_threads(16, 4, nullptr).threads, 4);
  EXPECT_EQ(choose_threads(2, 4, nullptr).threads, 1);  // oversubscribed: never below 1
  EXPECT_EQ(choose_threads(0, 0, nullptr).threads, 1);
  const ThreadChoice choice = choose_threads(16, 4, nullptr);
  EXPECT_EQ(choice.reason, "16 CPUs in this rank's affinity mask, shared by 4 ranks on this node");
}

TEST(LaunchThreads, EnvironmentOverrideWins) {
  const ThreadChoice choice = choose_threads(2, 2, "8");
  EXPECT_EQ(choice.threads, 8);
  EXPECT_EQ(choice.reason, "SHARDTUNE_THREADS=8");
  EXPECT_THROW(choose_threads(2, 1, "0"), UserError);
  EXPECT_THROW(choose_threads(2, 1, "-3"), UserError);
  EXPECT_THROW(choose_threads(2, 1, "two"), UserError);
  EXPECT_THROW(choose_threads(2, 1, "4x"), UserError);
}

}  // namespace
}  // namespace shardtune::launch
