// The rank grid: how the world's ranks are laid out over the tensor-parallel (tp) and
// data-parallel (dp) axes, and the communicators for each axis.
//
// Layout (as Megatron's default order): tp is the innermost axis, so the ranks of one TP group are
// adjacent and, with the usual block mapping of ranks to nodes, share a node:
//
//     rank = tp_rank + dp_rank * tp          tp_rank = rank % tp,  dp_rank = rank / tp
//
// Worked example, world 8, tp 2 (so dp 4):
//
//     rank     0  1  2  3  4  5  6  7
//     tp_rank  0  1  0  1  0  1  0  1
//     dp_rank  0  0  1  1  2  2  3  3
//
//     TP groups (same dp_rank): [0,1] [2,3] [4,5] [6,7]   -> each holds one full model replica
//     DP groups (same tp_rank): [0,2,4,6] [1,3,5,7]       -> each holds one shard, replicated
//
// A rank's position in its TP group is its tp_rank, in its DP group its dp_rank.
//
// The free functions are pure (no communication) and cheap. RankGrid is built once in launch/ and
// passed by reference; there is no global process-group state.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace shardtune::parallel {

// Sizes of the grid's axes; world size = tp * dp.
struct ParallelDims {
  int tp = 1;  // tensor-parallel degree: ranks that split each layer
  int dp = 1;  // data-parallel degree: model replicas that split the batch
  int world() const { return tp * dp; }
};

// Validates a user's choice of tp for a world of `world` ranks; dp = world / tp.
// Throws UserError naming the factors that would work, e.g.
//   "[parallel] tp=3 does not divide the world size 4 (ranks): choose tp in {1, 2, 4}".
ParallelDims make_dims(int world, int tp);

// The divisors of `world`, ascending: the valid tp values.
std::vector<int> valid_tp_values(int world);

// A rank's coordinates on the grid.
struct RankCoord {
  int tp_rank = 0;  // in [0, tp)
  int dp_rank = 0;  // in [0, dp)
};

// Throw std::out_of_range for a rank or coordinate outside the grid.
RankCoord coord_of(int rank, const ParallelDims& dims);
int rank_of(const RankCoord& coord, const ParallelDims& dims);

// World ranks of the TP (resp. DP) group that `rank` belongs to, ascending; index i holds the
// member with tp_rank (resp. dp_rank) i. Example above: tp_group_ranks(5) = {4, 5},
// dp_group_ranks(5) = {1, 3, 5, 7}.
std::vector<int> tp_group_ranks(int rank, const ParallelDims& dims);
std::vector<int> dp_group_ranks(int rank, const ParallelDims& dims);

// TP collectives run at every layer, so a TP group spread over nodes is much slower than one inside
// a node. Given node_of_rank[r] = node id of world rank r (size = dims.world()), returns a warning
// naming the first offending group and the fix, or "" when every TP group sits on one node.
std::string tp_span_warning(const ParallelDims& dims, const std::vector<int>& node_of_rank);

// Makes this rank's communicator for one axis. Called on every rank of the world at the same
// point, like MPI_Comm_split: ranks passing equal colors form one group, ordered by key. Must
// return a communicator of that group whose rank() is the caller's position by key.
using SplitFn = std::function<std::shared_ptr<Communicator>(int color, int key,
                                                            const std::string& label)>;

// The world, TP and DP communicators of this rank. Axes of size 1 get a LocalCommunicator
// (collectives are free no-ops); others come from `split` with color = the other axis' rank and
// key = this axis' rank, TP first, then DP. Construction is collective over the world when an
// axis is larger than 1. Not copyable (one per process); movable.
class RankGrid {
 public:
  RankGrid(std::shared_ptr<Communicator> world, int tp, const SplitFn& split);

  // Splits an MpiCommunicator world with MPI_Comm_split; any world of size 1 gives local axes.
  // Throws CommunicationError for a multi-rank world of another backend (pass a SplitFn then).
  static RankGrid create(std::shared_ptr<Communicator> world, int tp);

  RankGrid(RankGrid&&) = default;
  RankGrid& operator=(RankGrid&&) = default;
  RankGrid(const RankGrid&) = delete;
  RankGrid& operator=(const RankGrid&) = delete;

  const ParallelDims& dims() const { return dims_; }
  const RankCoord& coord() const { return coord_; }
  int rank() const { return world_->rank(); }

  Communicator& world() const { return *world_; }
  Communicator& tp() const { return *tp_; }  // size dims().tp, rank coord().tp_rank
  Communicator& dp() const { return *dp_; }  // size dims().dp, rank coord().dp_rank
  const std::shared_ptr<Communicator>& world_ptr() const { return world_; }
  const std::shared_ptr<Communicator>& tp_ptr() const { return tp_; }
  const std::shared_ptr<Communicator>& dp_ptr() const { return dp_; }

  // "rank 5/8 (tp 1/2, dp 2/4)", for logs.
  std::string describe() const;

 private:
  ParallelDims dims_;
  RankCoord coord_;
  std::shared_ptr<Communicator> world_;
  std::shared_ptr<Communicator> tp_;
  std::shared_ptr<Communicator> dp_;
};

}  // namespace shardtune::parallel
