// ZeRO stage 1 (Rajbhandari et al. 2020): AdamW whose state is sharded across the data-parallel
// group. Works on the flat buckets of a sharded parallel::GradSync: after the gradient
// reduce-scatter, each rank updates its 1/dp slice of every bucket (parameters, exp_avg,
// exp_avg_sq), then all-gathers the updated slices so every rank holds the full parameters again.
// Optimizer state per rank: 8 bytes x (trainable parameters / dp), plus bucket padding.
//
// Parameters are re-pointed (set_data) at views of flat per-bucket parameter buffers so the
// all-gather writes them in place. Collective over the DP group: every rank calls step() and
// gather_state() in the same order.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "core/optimizer.h"
#include "parallel/communicator.h"
#include "parallel/grad_sync.h"

namespace shardtune::core {

class ZeroAdamW {
 public:
  // `sync` must be in sharded mode over `params` (same order) and `dp`.
  ZeroAdamW(std::vector<NamedParameter> params, parallel::GradSync& sync,
            parallel::Communicator& dp, AdamWOptions options);

  // Sum of squares of this rank's gradient shards (reduce over DP for the global norm). Parameters
  // marked false by set_norm_counted() are left out (TP-replicated parameters on TP ranks > 0, so
  // that a reduction over TP counts them once).
  double shard_grad_norm_squared() const;
  void set_norm_counted(const std::vector<bool>& counted);
  void scale_shard_grads(double factor);
  // One update of the local shards, then the parameter all-gather.
  void step(double lr);

  int64_t step_count() const { return step_; }
  void set_step_count(int64_t step) { step_ = step; }
  // Bytes of optimizer state held by this rank.
  int64_t state_bytes() const;
  // Collective: the full exp_avg / exp_avg_sq of every parameter, in params order (for
  // checkpoints, which store optimizer state at its global shape).
  void gather_state(std::vector<torch::Tensor>& exp_avg, std::vector<torch::Tensor>& exp_avg_sq);
  // The inverse, not collective: every rank passes the full exp_avg / exp_avg_sq of every
  // parameter (params order) and keeps its own 1/dp slice of each bucket (checkpoint loading at
  // any DP size).
  void set_state(const std::vector<torch::Tensor>& exp_avg,
                 const std::vector<torch::Tensor>& exp_avg_sq);

 private:
  torch::Tensor full_from_shards(int64_t bucket, const torch::Tensor& shard);

  std::vector<NamedParameter> params_;
  parallel::GradSync& sync_;
  parallel::Communicator& dp_;
  AdamWOptions options_;
  std::vector<torch::Tensor> flat_params_;  // per bucket, padded
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_, decay_mask_;  // per bucket, shard-sized
  std::vector<torch::Tensor> norm_mask_;  // per bucket, shard-sized float 0/1; empty = all count
  int64_t step_ = 0;
};

}  // namespace shardtune::core
