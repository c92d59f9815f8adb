// Tensor-parallel collectives as autograd functions (Megatron's f/g operators and the last-dim
// scatter/gather pair), the dropout RNG tracker, and the TP group handle the layers carry.
//
//   op                       forward                          backward
//   copy_to_tp      (f)      identity                         all-reduce(sum) of the gradient
//   reduce_from_tp  (g)      all-reduce(sum)                  identity
//   gather_from_tp           all-gather along the last dim    keep this rank's slice
//   scatter_to_tp            keep this rank's slice           all-gather along the last dim
//
// Each has a one-rank shortcut: with a TP group of size 1 it returns its input untouched (no copy,
// no autograd node). All ranks of the TP group must call the same ops in the same order (the
// Communicator contract); the layers guarantee this because every TP rank runs the same model code
// on the same batch.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace shardtune::parallel {

// The TP group a model is built for. Default: a group of one (no tensor parallelism).
struct TpGroup {
  std::shared_ptr<Communicator> comm;  // null = group of one
  int rank() const { return comm ? comm->rank() : 0; }
  int size() const { return comm ? comm->size() : 1; }
  bool active() const { return size() > 1; }
};

torch::Tensor copy_to_tp(const torch::Tensor& x, const TpGroup& tp);
torch::Tensor reduce_from_tp(const torch::Tensor& x, const TpGroup& tp);
// x: [..., n] on every rank -> [..., size * n] (rank 0's slice first).
torch::Tensor gather_from_tp(const torch::Tensor& x, const TpGroup& tp);
// x: [..., size * n] replicated -> [..., n], this rank's slice. The last dim must divide evenly.
torch::Tensor scatter_to_tp(const torch::Tensor& x, const TpGroup& tp);

// Megatron's RNG tracker for dropout on the CPU default generator. Two streams:
//   default ("data-parallel"): torch::manual_seed(seed) on every rank, so all TP ranks drop the
//     same elements of replicated activations (residual/hidden dropout);
//   "model-parallel": seed + 2718 + tp_rank, different per TP rank and equal across DP ranks, for
//     dropout on sharded activations (attention probabilities of this rank's heads).
// fork(name) swaps the named state in for the lifetime of the returned guard, then saves it back and
// restores the default stream.
class RngTracker {
 public:
  // Seeds both streams (call once per run, after the rank grid exists).
  void seed(uint64_t seed, int tp_rank);
  class Fork {
   public:
    Fork(RngTracker& tracker, const std::string& name);
    ~Fork();
    Fork(const Fork&) = delete;
    Fork& operator=(const Fork&) = delete;

   private:
    RngTracker& tracker_;
    std::string name_;
    at::Tensor saved_default_;
  };
  Fork fork(const std::string& name = "model-parallel") { return Fork(*this, name); }
  // Snapshot / restore of every stream (default included), for exact resume from checkpoints.
  std::map<std::string, at::Tensor> get_states() const;
  void set_states(const std::map<std::string, at::Tensor>& states);

 private:
  std::map<std::string, at::Tensor> states_;  // name -> generator state (uint8 tensor)
};

// The process's tracker (the CPU default generator is process-wide, so its tracker is too).
RngTracker& rng_tracker();

}  // namespace shardtune::parallel
