// Rank-grid math (pure functions, no MPI) and RankGrid construction with a fake split.
#include <gtest/gtest.h>

#include <map>

#include "base/errors.h"
#include "parallel/local_communicator.h"
#include "parallel/rank_grid.h"

namespace shardtune::parallel {
namespace {

using Ranks = std::vector<int>;

std::string user_error_of(int world, int tp) {
  try {
    make_dims(world, tp);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(ParallelGrid, MakeDimsAcceptsEveryDivisor) {
  for (int world : {1, 2, 4, 6, 8, 12}) {
    for (int tp : valid_tp_values(world)) {
      const ParallelDims dims = make_dims(world, tp);
      EXPECT_EQ(dims.tp, tp);
      EXPECT_EQ(dims.dp, world / tp);
      EXPECT_EQ(dims.world(), world);
    }
  }
}

TEST(ParallelGrid, ValidTpValuesAreTheDivisors) {
  EXPECT_EQ(valid_tp_values(1), (Ranks{1}));
  EXPECT_EQ(valid_tp_values(8), (Ranks{1, 2, 4, 8}));
  EXPECT_EQ(valid_tp_values(12), (Ranks{1, 2, 3, 4, 6, 12}));
  EXPECT_EQ(valid_tp_values(7), (Ranks{1, 7}));
}

TEST(ParallelGrid, MakeDimsMessagesNameEveryFactor) {
  EXPECT_EQ(user_error_of(4, 3),
            "[parallel] tp=3 does not divide the world size 4 (ranks): choose tp in {1, 2, 4}");
  EXPECT_EQ(user_error_of(6, 4),
            "[parallel] tp=4 does not divide the world size 6 (ranks): choose tp in {1, 2, 3, 6}");
  const std::string too_big = user_error_of(4, 8);
  EXPECT_NE(too_big.find("tp=8 exceeds the world size 4 (ranks): choose tp in {1, 2, 4}"),
            std::string::npos)
      << too_big;
  const std::string zero = user_error_of(4, 0);
  EXPECT_NE(zero.find("tp=0 must be at least 1"), std::string::npos) << zero;
  EXPECT_NE(zero.find("choose tp in {1, 2, 4}"), std::string::npos) << zero;
  EXPECT_NE(user_error_of(0, 1).find("world size must be at least 1"), std::string::npos);
  EXPECT_THROW(make_dims(-2, 1), UserError);
}

// The worked example in rank_grid.h: world 8, tp 2.
TEST(ParallelGrid, WorkedExampleWorld8Tp2) {
  const ParallelDims dims = make_dims(8, 2);
  EXPECT_EQ(dims.dp, 4);
  const int expected_tp_rank[] = {0, 1, 0, 1, 0, 1, 0, 1};
  const int expected_dp_rank[] = {0, 0, 1, 1, 2, 2, 3, 3};
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(coord_of(r, dims).tp_rank, expected_tp_rank[r]) << r;
    EXPECT_EQ(coord_of(r, dims).dp_rank, expected_dp_rank[r]) << r;
  }
  EXPECT_EQ(tp_group_ranks(0, dims), (Ranks{0, 1}));
  EXPECT_EQ(tp_group_ranks(3, dims), (Ranks{2, 3}));
  EXPECT_EQ(tp_group_ranks(5, dims), (Ranks{4, 5}));
  EXPECT_EQ(tp_group_ranks(6, dims), (Ranks{6, 7}));
  EXPECT_EQ(dp_group_ranks(0, dims), (Ranks{0, 2, 4, 6}));
  EXPECT_EQ(dp_group_ranks(5, dims), (Ranks{1, 3, 5, 7}));
  EXPECT_EQ(dp_group_ranks(6, dims), (Ranks{0, 2, 4, 6}));
}

// 16 ranks, tp 4: TP groups are blocks of 4, DP groups stride by 4.
TEST(ParallelGrid, WorkedExampleWorld16Tp4) {
  const ParallelDims dims = make_dims(16, 4);
  EXPECT_EQ(tp_group_ranks(9, dims), (Ranks{8, 9, 10, 11}));
  EXPECT_EQ(dp_group_ranks(9, dims), (Ranks{1, 5, 9, 13}));
  EXPECT_EQ(rank_of({3, 2}, dims), 11);
}

TEST(ParallelGrid, CoordAndRankRoundTripAndGroupsPartitionTheWorld) {
  for (int world : {1, 2, 3, 4, 6, 8, 12, 16}) {
    for (int tp : valid_tp_values(world)) {
      const ParallelDims dims = make_dims(world, tp);
      std::map<Ranks, int> tp_groups;
      std::map<Ranks, int> dp_groups;
      for (int r = 0; r < world; ++r) {
        const RankCoord c = coord_of(r, dims);
        EXPECT_EQ(rank_of(c, dims), r);
        EXPECT_EQ(r, c.tp_rank + c.dp_rank * tp);
        const Ranks tg = tp_group_ranks(r, dims);
        const Ranks dg = dp_group_ranks(r, dims);
        ASSERT_EQ(static_cast<int>(tg.size()), tp);
        ASSERT_EQ(static_cast<int>(dg.size()), world / tp);
        EXPECT_EQ(tg[c.tp_rank], r);  // position in the group = coordinate
        EXPECT_EQ(dg[c.dp_rank], r);
        for (int m : tg) EXPECT_EQ(coord_of(m, dims).dp_rank, c.dp_rank);
        for (int m : dg) EXPECT_EQ(coord_of(m, dims).tp_rank, c.tp_rank);
        ++tp_groups[tg];
        ++dp_groups[dg];
      }
      EXPECT_EQ(static_cast<int>(tp_groups.size()), world / tp);
      EXPECT_EQ(static_cast<int>(dp_groups.size()), tp);
      for (auto& [group, count] : tp_groups) EXPECT_EQ(count, tp);
      for (auto& [group, count] : dp_groups) EXPECT_EQ(count, world / tp);
    }
  }
}

TEST(ParallelGrid, OutOfRangeRanksAndCoordinatesThrow) {
  const ParallelDims dims = make_dims(4, 2);
  EXPECT_THROW(coord_of(4, dims), std::out_of_range);
  EXPECT_THROW(coord_of(-1, dims), std::out_of_range);
  EXPECT_THROW(rank_of({2, 0}, dims), std::out_of_range);
  EXPECT_THROW(rank_of({0, 2}, dims), std::out_of_range);
  EXPECT_THROW(tp_group_ranks(9, dims), std::out_of_range);
}

TEST(ParallelGrid, TpSpanWarning) {
  const ParallelDims dims = make_dims(8, 2);
  // Two nodes of four ranks, block mapping: TP pairs stay inside nodes.
  EXPECT_EQ(tp_span_warning(dims, {0, 0, 0, 0, 1, 1, 1, 1}), "");
  // Round-robin mapping: every TP pair crosses nodes.
  const std::string w = tp_span_warning(dims, {0, 1, 0, 1, 0, 1, 0, 1});
  EXPECT_NE(w.find("4 of 4 TP groups span nodes"), std::string::npos) << w;
  EXPECT_NE(w.find("ranks [0, 1] on nodes [0, 1]"), std::string::npos) << w;
  EXPECT_NE(w.find("smallest node here has 4"), std::string::npos) << w;
  // tp larger than a node: 3 ranks per node, tp 2 on 6 ranks -> group [2,3] crosses.
  const std::string w2 = tp_span_warning(make_dims(6, 2), {0, 0, 0, 1, 1, 1});
  EXPECT_NE(w2.find("1 of 3 TP groups span nodes (first: ranks [2, 3] on nodes [0, 1])"),
            std::string::npos)
      << w2;
  EXPECT_EQ(tp_span_warning(make_dims(4, 1), {0, 1, 2, 3}), "");  // tp 1 never spans
  EXPECT_THROW(tp_span_warning(dims, {0, 0}), std::invalid_argument);
}

// A communicator that only has a rank and a size: enough to build a RankGrid without MPI.
class FakeComm final : public Communicator {
 public:
  FakeComm(int rank, int size, std::string label) : Communicator(rank, size, std::move(label)) {}
  std::string backend() const override { return "fake"; }
  WorkPtr all_reduce_async(torch::Tensor&, ReduceOp) override { return nullptr; }
  WorkPtr all_gather_async(torch::Tensor&, const torch::Tensor&) override { return nullptr; }
  WorkPtr reduce_scatter_async(torch::Tensor&, const torch::Tensor&, ReduceOp) override {
    return nullptr;
  }
  WorkPtr broadcast_async(torch::Tensor&, int) override { return nullptr; }
  void barrier() override {}
};

struct SplitCall {
  int color;
  int key;
  std::string label;
};

TEST(ParallelGrid, RankGridSplitsTpThenDpWithCoordinatesAsColorAndKey) {
  const int world = 8;
  for (int tp : {1, 2, 4, 8}) {
    for (int me = 0; me < world; ++me) {
      std::vector<SplitCall> calls;
      // Every rank of the real job would pass (color, key); the group is all ranks with that
      // color, and our rank in it is the number of members with a smaller key.
      const ParallelDims dims = make_dims(world, tp);
      auto split = [&](int color, int key, const std::string& label) {
        calls.push_back({color, key, label});
        const int size = label == "tp" ? dims.tp : dims.dp;
        return std::shared_ptr<Communicator>(std::make_shared<FakeComm>(key, size, label));
      };
      RankGrid grid(std::make_shared<FakeComm>(me, world, "world"), tp, split);
      const RankCoord c = coord_of(me, dims);
      EXPECT_EQ(grid.coord().tp_rank, c.tp_rank);
      EXPECT_EQ(grid.coord().dp_rank, c.dp_rank);
      EXPECT_EQ(grid.tp().size(), dims.tp);
      EXPECT_EQ(grid.tp().rank(), c.tp_rank);
      EXPECT_EQ(grid.dp().size(), dims.dp);
      EXPECT_EQ(grid.dp().rank(), c.dp_rank);
      EXPECT_EQ(grid.world().rank(), me);
      size_t i = 0;
      if (dims.tp > 1) {
        ASSERT_GT(calls.size(), i);
        EXPECT_EQ(calls[i].label, "tp");
        EXPECT_EQ(calls[i].color, c.dp_rank);
        EXPECT_EQ(calls[i].key, c.tp_rank);
        ++i;
      } else {
        EXPECT_EQ(grid.tp().backend(), "local");
      }
      if (dims.dp > 1) {
        ASSERT_GT(calls.size(), i);
        EXPECT_EQ(calls[i].label, "dp");
        EXPECT_EQ(calls[i].color, c.tp_rank);
        EXPECT_EQ(calls[i].key, c.dp_rank);
        ++i;
      } else {
        EXPECT_EQ(grid.dp().backend(), "local");
      }
      EXPECT_EQ(calls.size(), i);
    }
  }
}

TEST(ParallelGrid, RankGridRejectsAWrongSplitAndBadTp) {
  auto wrong = [](int, int, const std::string& label) {
    return std::shared_ptr<Communicator>(std::make_shared<FakeComm>(0, 3, label));
  };
  EXPECT_THROW(RankGrid(std::make_shared<FakeComm>(1, 4, "world"), 2, wrong), CommunicationError);
  EXPECT_THROW(RankGrid(std::make_shared<FakeComm>(1, 4, "world"), 3, wrong), UserError);
}

TEST(ParallelGrid, RankGridOfOneRankIsAllLocal) {
  RankGrid grid = RankGrid::create(std::make_shared<LocalCommunicator>("world"), 1);
  EXPECT_EQ(grid.dims().tp, 1);
  EXPECT_EQ(grid.dims().dp, 1);
  EXPECT_EQ(grid.tp().backend(), "local");
  EXPECT_EQ(grid.dp().backend(), "local");
  EXPECT_EQ(grid.tp().name(), "local:tp");
  EXPECT_EQ(grid.describe(), "rank 0/1 (tp 0/1, dp 0/1)");
  EXPECT_THROW(RankGrid::create(std::make_shared<LocalCommunicator>(), 2), UserError);
  EXPECT_THROW(RankGrid::create(std::make_shared<FakeComm>(0, 2, "world"), 1),
               CommunicationError);
}

}  // namespace
}  // namespace shardtune::parallel
