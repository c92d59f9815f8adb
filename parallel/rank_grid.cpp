#include "parallel/rank_grid.h"

#include <sstream>
#include <stdexcept>

#include "base/errors.h"
#include "base/strings.h"
#include "parallel/local_communicator.h"
#include "parallel/mpi_communicator.h"

namespace shardtune::parallel {

namespace {

std::string choose_tp(int world) {
  return "choose tp in {" + base::join(valid_tp_values(world)) + "}";
}

void check_dims(const ParallelDims& dims) {
  if (dims.tp < 1 || dims.dp < 1) {
    throw std::out_of_range("[parallel] invalid grid tp=" + std::to_string(dims.tp) +
                            " dp=" + std::to_string(dims.dp));
  }
}

}  // namespace

std::vector<int> valid_tp_values(int world) {
  std::vector<int> divisors;
  for (int d = 1; d <= world; ++d) {
    if (world % d == 0) divisors.push_back(d);
  }
  return divisors;
}

ParallelDims make_dims(int world, int tp) {
  require(world >= 1, "[parallel] the world size must be at least 1 rank, got " +
                          std::to_string(world));
  const std::string world_text = " the world size " + std::to_string(world) + " (ranks): ";
  require(tp >= 1, "[parallel] tp=" + std::to_string(tp) + " must be at least 1 for" + world_text +
                       choose_tp(world));
  require(tp <= world, "[parallel] tp=" + std::to_string(tp) + " exceeds" + world_text +
                           choose_tp(world) + ", or launch " + std::to_string(tp) +
                           "x more ranks");
  require(world % tp == 0, "[parallel] tp=" + std::to_string(tp) + " does not divide" +
                               world_text + choose_tp(world));
  return ParallelDims{tp, world / tp};
}

RankCoord coord_of(int rank, const ParallelDims& dims) {
  check_dims(dims);
  if (rank < 0 || rank >= dims.world()) {
    throw std::out_of_range("[parallel] rank " + std::to_string(rank) + " is outside a world of " +
                            std::to_string(dims.world()));
  }
  return RankCoord{rank % dims.tp, rank / dims.tp};
}

int rank_of(const RankCoord& coord, const ParallelDims& dims) {
  check_dims(dims);
  if (coord.tp_rank < 0 || coord.tp_rank >= dims.tp || coord.dp_rank < 0 ||
      coord.dp_rank >= dims.dp) {
    throw std::out_of_range("[parallel] coordinate (tp_rank " + std::to_string(coord.tp_rank) +
                            ", dp_rank " + std::to_string(coord.dp_rank) +
                            ") is outside the grid tp=" + std::to_string(dims.tp) +
                            " dp=" + std::to_string(dims.dp));
  }
  return coord.tp_rank + coord.dp_rank * dims.tp;
}

std::vector<int> tp_group_ranks(int rank, const ParallelDims& dims) {
  const RankCoord me = coord_of(rank, dims);
  std::vector<int> ranks;
  for (int t = 0; t < dims.tp; ++t) ranks.push_back(rank_of({t, me.dp_rank}, dims));
  return ranks;
}

std::vector<int> dp_group_ranks(int rank, const ParallelDims& dims) {
  const RankCoord me = coord_of(rank, dims);
  std::vector<int> ranks;
  for (int d = 0; d < dims.dp; ++d) ranks.push_back(rank_of({me.tp_rank, d}, dims));
  return ranks;
}

std::string tp_span_warning(const ParallelDims& dims, const std::vector<int>& node_of_rank) {
  check_dims(dims);
  if (static_cast<int>(node_of_rank.size()) != dims.world()) {
    throw std::invalid_argument("[parallel] tp_span_warning: " +
                                std::to_string(node_of_rank.size()) +
                                " node ids for a world of " + std::to_string(dims.world()));
  }
  int spanning = 0;
  std::vector<int> first_group;
  for (int d = 0; d < dims.dp; ++d) {
    const std::vector<int> group = tp_group_ranks(rank_of({0, d}, dims), dims);
    bool spans = false;
    for (int r : group) spans = spans || node_of_rank[r] != node_of_rank[group.front()];
    if (spans && spanning++ == 0) first_group = group;
  }
  if (spanning == 0) return "";

  std::vector<int> nodes;
  for (int r : first_group) nodes.push_back(node_of_rank[r]);
  std::vector<int> ranks_per_node;  // indexed by node id, ids as given (may be sparse)
  for (int node : node_of_rank) {
    if (node >= static_cast<int>(ranks_per_node.size())) ranks_per_node.resize(node + 1, 0);
    if (node >= 0) ++ranks_per_node[node];
  }
  int smallest = dims.world();
  for (int n : ranks_per_node) {
    if (n > 0 && n < smallest) smallest = n;
  }
  std::ostringstream s;
  s << "[parallel] " << spanning << " of " << dims.dp << " TP groups span nodes (first: ranks ["
    << base::join(first_group) << "] on nodes [" << base::join(nodes)
    << "]); TP collectives run at every layer and are slow between nodes. Use tp <= the ranks "
       "per node (smallest node here has "
    << smallest << ") and map ranks to nodes in blocks (mpirun --map-by slot, srun "
                   "--distribution=block)";
  return s.str();
}

RankGrid::RankGrid(std::shared_ptr<Communicator> world, int tp, const SplitFn& split)
    : world_(std::move(world)) {
  if (!world_) throw std::invalid_argument("[parallel] RankGrid needs a world communicator");
  dims_ = make_dims(world_->size(), tp);
  coord_ = coord_of(world_->rank(), dims_);

  auto make_axis = [&](const char* label, int axis_size, int color, int key) {
    if (axis_size == 1) {
      return std::shared_ptr<Communicator>(std::make_shared<LocalCommunicator>(label));
    }
    std::shared_ptr<Communicator> comm = split(color, key, label);
    if (!comm || comm->size() != axis_size || comm->rank() != key) {
      throw CommunicationError(
          "[parallel] RankGrid: the split for axis " + std::string(label) + " gave " +
          (comm ? "rank " + std::to_string(comm->rank()) + " of " + std::to_string(comm->size())
                : std::string("no communicator")) +
          " on world rank " + std::to_string(world_->rank()) + "; expected rank " +
          std::to_string(key) + " of " + std::to_string(axis_size));
    }
    return comm;
  };
  // TP first, then DP: the same order on every rank, as collective splits require.
  tp_ = make_axis("tp", dims_.tp, /*color=*/coord_.dp_rank, /*key=*/coord_.tp_rank);
  dp_ = make_axis("dp", dims_.dp, /*color=*/coord_.tp_rank, /*key=*/coord_.dp_rank);
}

RankGrid RankGrid::create(std::shared_ptr<Communicator> world, int tp) {
  if (!world) throw std::invalid_argument("[parallel] RankGrid needs a world communicator");
  if (world->size() == 1) {
    return RankGrid(std::move(world), tp, [](int, int, const std::string&) {
      return std::shared_ptr<Communicator>();  // never called: every axis has size 1
    });
  }
  auto mpi = std::dynamic_pointer_cast<MpiCommunicator>(world);
  if (!mpi) {
    throw CommunicationError("[parallel] RankGrid::create splits only an MPI world; " +
                             world->name() + " needs an explicit SplitFn");
  }
  return RankGrid(std::move(world), tp, [mpi](int color, int key, const std::string& label) {
    return std::shared_ptr<Communicator>(mpi->split(color, key, label));
  });
}

std::string RankGrid::describe() const {
  std::ostringstream s;
  s << "rank " << rank() << "/" << dims_.world() << " (tp " << coord_.tp_rank << "/" << dims_.tp
    << ", dp " << coord_.dp_rank << "/" << dims_.dp << ")";
  return s.str();
}

}  // namespace shardtune::parallel
