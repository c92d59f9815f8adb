// Data-parallel gradient synchronisation with buckets overlapped with backward (the scheme of
// PyTorch DDP's Reducer, reference/parallel.md section 2).
//
// Each trainable parameter's .grad is made a view into one flat bucket buffer, so autograd
// accumulates straight into the buffer that is communicated (no copies). Buckets are filled in
// reverse registration order, because backward produces gradients roughly last layer first; a
// bucket holds parameters up to `bucket_bytes` (one parameter larger than that gets its own).
// A post-hook on each parameter's gradient accumulator marks it ready; when every parameter of a
// bucket is ready the bucket's async all-reduce (sum) starts, strictly in bucket-index order on
// every rank (a bucket that completes early waits for its predecessors), while backward goes on.
// Open MPI progresses non-blocking collectives only inside MPI calls, so each hook also polls the
// in-flight buckets.
//
// Usage per optimizer step with gradient accumulation over k micro-batches:
//     for i in 0..k-1: sync.set_sync(i == k-1); forward; backward;
//     sync.finish();            // waits; grads now hold the sum over the DP group
//     ... clip, optimizer step ...; sync.zero_grad();
// Parameters that get no gradient in a step are still communicated (as zeros) by finish(), so
// every rank issues the same collectives in the same order.
//
// Sharded mode (ZeRO-1, `shard_gradients`): each bucket is padded to a multiple of the DP size and
// reduce-scattered instead of all-reduced; rank r receives the summed gradient of elements
// [r * S, (r + 1) * S) of the bucket (S = padded numel / dp) in shard_grad(bucket). The full-size
// .grad views then hold only this rank's local contribution.
//
// Not thread-safe; hooks run on the thread that calls backward (LibTorch's CPU engine).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "parallel/communicator.h"

namespace shardtune::parallel {

class GradSync {
 public:
  // params: leaves with requires_grad, in registration order. Their .grad becomes a view into a
  // bucket (existing values are copied in). The communicator must outlive this object.
  GradSync(std::vector<torch::Tensor> params, Communicator& dp, int64_t bucket_bytes,
           bool shard_gradients = false);
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Whether the next backward communicates (false on the micro-steps of accumulation).
  void set_sync(bool sync);
  // Launches buckets that did not become ready (unused parameters), waits for all, and leaves
  // the reduced sums in every .grad. Collective over the DP group.
  void finish();
  // Zeroes the bucket buffers (so every .grad) in place; the views stay.
  void zero_grad();

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Padded numel of bucket i (a multiple of the DP size in sharded mode).
  int64_t bucket_numel(int64_t i) const { return buckets_[static_cast<size_t>(i)].buffer.numel(); }
  // Parameter indices in bucket i, in buffer order, and each one's offset in its bucket.
  const std::vector<size_t>& bucket_params(int64_t i) const {
    return buckets_[static_cast<size_t>(i)].params;
  }
  int64_t offset_in_bucket(size_t param_index) const { return offset_of_[param_index]; }
  int64_t bucket_of(size_t param_index) const { return static_cast<int64_t>(bucket_of_[param_index]); }
  // Sharded mode: this rank's reduced gradient shard of bucket i, [bucket_numel(i) / dp].
  torch::Tensor& shard_grad(int64_t i) { return buckets_[static_cast<size_t>(i)].shard; }
  bool sharded() const { return shard_; }
  // Buckets whose all-reduce started from a hook, i.e. during backward (for tests and benchmarks).
  int64_t launched_during_backward() const { return launched_in_hooks_; }

 private:
  struct Bucket {
    torch::Tensor buffer;           // flat, contiguous (padded in sharded mode)
    torch::Tensor shard;            // sharded mode: reduced slice of buffer owned by this rank
    std::vector<size_t> params;     // indices into params_
    size_t pending = 0;             // params not yet ready in this backward
    WorkPtr work;                   // in-flight all-reduce
    bool launched = false;
  };
  class ReadyHook;

  void mark_ready(size_t param_index);
  void launch_ready_in_order(bool from_hook);
  void poll();
  void reset_pending();

  std::vector<torch::Tensor> params_;
  std::vector<size_t> bucket_of_;   // param index -> bucket index
  std::vector<int64_t> offset_of_;  // param index -> offset in its bucket
  bool shard_;
  std::vector<Bucket> buckets_;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // keep hooks alive
  Communicator& dp_;
  size_t next_to_launch_ = 0;
  bool sync_ = true;
  int64_t launched_in_hooks_ = 0;
};

}  // namespace shardtune::parallel
