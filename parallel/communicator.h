// Collective communication over a group of ranks, shaped like PyTorch's c10d ProcessGroup.
//
// Backends: MpiCommunicator (CPU tensors, mpi_communicator.h), NcclCommunicator (CUDA tensors,
// nccl_communicator.h, built when SHARDTUNE_HAVE_NCCL), LocalCommunicator (a group of one,
// local_communicator.h). Code above parallel/ talks to this interface only and never includes MPI
// or NCCL headers.
//
// Contract (as in c10d): every rank of the group calls the collectives of one communicator in the
// same order, with the same op, root, dtype and element counts. Breaking it is not detected: it
// hangs or corrupts data.
//
// Async forms return a Work handle. Until wait() returns (or is_completed() has returned true),
// the tensors passed in must not be read or written, and must not be resized; the handle keeps
// them (and any staging buffers) alive. Dropping an unfinished handle waits for it.
//
// Tensors: any shape, including empty ones. Non-contiguous tensors (e.g. a transposed view) are
// copied to a contiguous buffer and the result is copied back on completion. Supported dtypes:
// float32, float64, int32, int64, uint8 everywhere; bfloat16 and float16 move everywhere and
// reduce on NCCL natively, on MPI in float32 (see mpi_communicator.h). kAvg needs a floating
// dtype.
//
// Thread-safety: none. One communicator is used by one thread at a time; with MPI underneath, calls
// on all communicators of a process must be serialized (MPI_THREAD_SERIALIZED).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include <torch/types.h>

namespace shardtune::parallel {

enum class ReduceOp { kSum, kAvg, kMax, kMin };

// "sum", "avg", "max", "min": for messages.
const char* to_string(ReduceOp op);

// A collective failed (a backend error code) or was called with unusable arguments (wrong device,
// dtype or sizes). Distinct from UserError: it signals a bug or a broken run, not a bad config.
// The message names the backend, group, op, rank and the source location of the check.
class CommunicationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Handle for one in-flight collective.
class Work {
 public:
  virtual ~Work() = default;
  // Blocks until the collective is done and its results are in the caller's tensors.
  // Idempotent. Throws CommunicationError if the backend reports a failure.
  virtual void wait() = 0;
  // Polls without blocking. Also drives progress (MPI_Test): backends such as Open MPI advance
  // non-blocking collectives only inside MPI calls, so callers overlapping communication with
  // compute should poll now and then. Once it returns true the results are in place, as after
  // wait().
  virtual bool is_completed() = 0;
};
using WorkPtr = std::shared_ptr<Work>;

// A Work that is already done (one-rank groups, empty shortcuts).
class CompletedWork final : public Work {
 public:
  void wait() override {}
  bool is_completed() override { return true; }
};

class Communicator {
 public:
  Communicator(int rank, int size, std::string label);
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }  // in [0, size)
  int size() const { return size_; }
  // "<backend>:<label>", e.g. "mpi:tp". For logs and error messages.
  std::string name() const;
  const std::string& label() const { return label_; }
  virtual std::string backend() const = 0;

  // In place: t becomes the reduction of every rank's t. kAvg = sum / size.
  virtual WorkPtr all_reduce_async(torch::Tensor& t, ReduceOp op) = 0;
  // out [size * n elements] = in of rank 0, then in of rank 1, ... in row-major order of out;
  // e.g. in [rows, cols] and out [size * rows, cols] concatenates along dim 0.
  // Requires out.numel() == size() * in.numel() and equal dtypes. in may be a view of out's own
  // piece (rank * n .. (rank + 1) * n), as in ZeRO parameter gathers.
  virtual WorkPtr all_gather_async(torch::Tensor& out, const torch::Tensor& in) = 0;
  // in [size * n elements] is reduced element-wise across ranks; rank r gets elements
  // [r * n, (r + 1) * n) of the result in out [n elements]. Requires
  // in.numel() == size() * out.numel() and equal dtypes.
  virtual WorkPtr reduce_scatter_async(torch::Tensor& out, const torch::Tensor& in,
                                       ReduceOp op) = 0;
  // t of rank `root` is copied into t of every rank. root in [0, size).
  virtual WorkPtr broadcast_async(torch::Tensor& t, int root) = 0;
  // Returns once every rank of the group has entered it.
  virtual void barrier() = 0;

  // Blocking forms: the async form, then wait().
  void all_reduce(torch::Tensor& t, ReduceOp op = ReduceOp::kSum);
  void all_gather(torch::Tensor& out, const torch::Tensor& in);
  void reduce_scatter(torch::Tensor& out, const torch::Tensor& in, ReduceOp op = ReduceOp::kSum);
  void broadcast(torch::Tensor& t, int root);

 protected:
  // Argument checks shared by the backends; each throws CommunicationError naming op and rank.
  void check_all_gather_sizes(const torch::Tensor& out, const torch::Tensor& in) const;
  void check_reduce_scatter_sizes(const torch::Tensor& out, const torch::Tensor& in) const;
  void check_root(int root) const;
  void check_avg_dtype(const torch::Tensor& t, ReduceOp op, const char* op_name) const;
  // "[parallel] <op> on mpi:tp rank 1/2: <what>"
  std::string describe(const char* op_name, const std::string& what) const;

 private:
  int rank_;
  int size_;
  std::string label_;
};

}  // namespace shardtune::parallel
