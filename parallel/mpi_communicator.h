// MpiCommunicator: the Communicator for CPU tensors, over non-blocking MPI collectives
// (MPI_Iallreduce, MPI_Iallgather, MPI_Ireduce_scatter_block, MPI_Ibcast).
//
// Only this header and its .cpp (and the NCCL bootstrap) include <mpi.h>; everything above
// parallel/ sees the Communicator interface.
//
// Ownership: each MpiCommunicator owns a private MPI communicator (a dup or a split), so its
// messages never match other code's on the same ranks, and sets MPI_ERRORS_RETURN on it so
// failures become CommunicationError (naming op, group and rank) instead of aborting in MPI.
// It frees the communicator on destruction, unless MPI is already finalized.
//
// Backend notes:
// - CPU tensors only (CUDA tensors: NcclCommunicator).
// - bfloat16 / float16 have no MPI reduction type: all_reduce and reduce_scatter of those dtypes
//   reduce a float32 copy and round once at the end (more accurate than NCCL's 16-bit sums, at
//   the cost of a conversion). all_gather and broadcast move any dtype bit for bit.
// - kAvg = MPI sum, then a division by size() when the Work completes.
// - Element counts per rank must fit MPI's int count (2^31 - 1).
// - Open MPI progresses non-blocking collectives only inside MPI calls: poll
//   Work::is_completed() (MPI_Test) while computing to get overlap.
// - Thread-safety: none; needs MPI_THREAD_SERIALIZED or better if several threads take turns.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace shardtune::parallel {

// How an MpiCommunicator runs its reductions; communicators made by split() inherit it.
struct MpiOptions {
  // All-reduces and reduce-scatters of at least this many bytes run as blocking MPI calls inside
  // the *_async call, which then returns completed Work: Open MPI 4.1's non-blocking reductions
  // measured 4.4x slower for 25 MiB buckets (docs/benchmarks-comm.md). Negative: never, every
  // collective is non-blocking (launch/ sets this for SHARDTUNE_MPI_NONBLOCKING=1, base/env.h).
  int64_t eager_reduce_bytes = int64_t{1} << 20;
};

class MpiCommunicator final : public Communicator {
 public:
  // Duplicates `comm` (collective over comm) and owns the duplicate.
  explicit MpiCommunicator(MPI_Comm comm, std::string label = "world", MpiOptions options = {});
  ~MpiCommunicator() override;

  // A communicator over a dup of MPI_COMM_WORLD. MPI must be initialized.
  static std::shared_ptr<MpiCommunicator> world(std::string label = "world",
                                                MpiOptions options = {});

  // MPI_Comm_split over this group (collective: every rank of the group must call it). Ranks with
  // the same color form one new group, ordered by key (ties by rank in this group). A negative
  // color means this rank joins no group: the result is nullptr on that rank.
  std::shared_ptr<MpiCommunicator> split(int color, int key, std::string label) const;

  // The owned MPI communicator, for MPI-IO (parallel HDF5) and the NCCL bootstrap. Do not free it.
  MPI_Comm native_handle() const { return comm_; }

  // MPI_COMM_WORLD rank of each member, indexed by rank in this group.
  std::vector<int> world_ranks() const;

  std::string backend() const override { return "mpi"; }

  const MpiOptions& options() const { return options_; }

  WorkPtr all_reduce_async(torch::Tensor& t, ReduceOp op) override;
  WorkPtr all_gather_async(torch::Tensor& out, const torch::Tensor& in) override;
  WorkPtr reduce_scatter_async(torch::Tensor& out, const torch::Tensor& in, ReduceOp op) override;
  WorkPtr broadcast_async(torch::Tensor& t, int root) override;
  void barrier() override;

 private:
  struct Adopt {};
  // Takes ownership of `owned` (already private to us, e.g. from MPI_Comm_split).
  MpiCommunicator(MPI_Comm owned, std::string label, MpiOptions options, Adopt);
  void check_cpu(const torch::Tensor& t, const char* op_name) const;
  int checked_count(int64_t count, const char* op_name) const;
  bool eager(int64_t bytes) const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  MpiOptions options_;
};

}  // namespace shardtune::parallel
