// NcclCommunicator: the Communicator for CUDA tensors, over NCCL. Built only when CMake finds NCCL
// (SHARDTUNE_HAVE_NCCL); this header includes neither nccl.h nor CUDA headers.
//
// Bootstrap: rank 0 of `group` makes the NCCL unique id and MPI_Bcasts it over the group's MPI
// communicator, then every rank calls ncclCommInitRank on `device` (as llm.c and the LibTorch
// MPI+NCCL example do). So the NCCL group has exactly the members and ranks of `group`.
//
// Streams: collectives run on a stream of this communicator. Before each one it waits (on the
// GPU, via an event) for the work already queued on CUDA's legacy default stream, which is
// LibTorch's default stream; kernels the caller queued on another stream must be synchronized by
// the caller first. Work::wait() blocks the host until the collective is done (event sync), then
// copies staged results back, so afterwards any stream may read the tensors and staging buffers
// can be freed safely. Work::is_completed() polls the event. Without LibTorch's CUDA headers
// (Debian's LibTorch 1.13 is CPU-only) this is the only ordering we can express portably.
//
// Tensors must be CUDA tensors on `device`. Reductions: float32, float64, float16, bfloat16
// (NCCL >= 2.10), int32, int64, uint8, int8; kAvg uses ncclAvg (floating dtypes only, as the
// interface says). all_gather and broadcast move any dtype.
//
// Lifetime: Works keep the NCCL state alive, so they may outlive the communicator. The
// MpiCommunicator `group` is kept for barrier(). Thread-safety: none.
#pragma once

#include <memory>
#include <string>

#include "parallel/communicator.h"
#include "parallel/rank_grid.h"

namespace shardtune::parallel {

class MpiCommunicator;

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `group`. `device` is the CUDA device index of this rank (commonly
  // local_rank % device count). label "" takes group's label.
  NcclCommunicator(std::shared_ptr<MpiCommunicator> group, int device, std::string label = "");
  ~NcclCommunicator() override;

  int device() const { return device_; }
  std::string backend() const override { return "nccl"; }

  WorkPtr all_reduce_async(torch::Tensor& t, ReduceOp op) override;
  WorkPtr all_gather_async(torch::Tensor& out, const torch::Tensor& in) override;
  WorkPtr reduce_scatter_async(torch::Tensor& out, const torch::Tensor& in, ReduceOp op) override;
  WorkPtr broadcast_async(torch::Tensor& t, int root) override;
  // Waits for this communicator's stream, then an MPI barrier over the group.
  void barrier() override;

  struct State;  // NCCL communicator + stream, shared with in-flight Works (defined in the .cpp)

 private:
  void check_cuda(const torch::Tensor& t, const char* op_name) const;

  std::shared_ptr<MpiCommunicator> group_;
  int device_;
  std::shared_ptr<State> state_;
};

// A SplitFn for RankGrid whose axes are NCCL communicators on `device`: each split is an MPI split
// of `parent` (for membership and the id broadcast), wrapped in a NcclCommunicator. Use with a
// world of NcclCommunicator(parent, device, "world").
SplitFn nccl_split_fn(std::shared_ptr<MpiCommunicator> parent, int device);

}  // namespace shardtune::parallel
