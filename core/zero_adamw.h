// ZeRO stage 1 AdamW (Rajbhandari et al. 2020): AdamW whose state is sharded across the
// data-parallel group. After the gradient reduce-scatter of a sharded parallel::GradSync, each
// rank updates its 1/dp slice of every bucket (parameters, exp_avg, exp_avg_sq) with the same
// arithmetic as AdamW, then all-gathers the updated slices so every rank holds the full parameters
// again (parallel::ZeroPartition). Optimizer state per rank: 8 bytes x (trainable parameters / dp),
// plus bucket padding.
//
// step(), state() are collective over the DP group: every rank calls them in the same order.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "core/optimizer.h"
#include "parallel/communicator.h"
#include "parallel/grad_sync.h"
#include "parallel/zero_partition.h"

namespace shardtune::core {

class ZeroAdamW final : public Optimizer {
 public:
  // `sync` must be in sharded mode over `params` (same order) and `dp`. The norm's `counted` flags
  // select what this rank's gradient shards contribute; its groups should start with `dp` (each
  // rank holds a disjoint gradient shard).
  ZeroAdamW(std::vector<NamedParameter> params, parallel::GradSync& sync,
            parallel::Communicator& dp, AdamWOptions options, NormShare norm = {});

  // Sum of squares of this rank's gradient shards, counted elements only.
  double local_grad_norm_squared() const override;
  const std::vector<parallel::Communicator*>& norm_groups() const override { return norm_.groups; }
  void scale_grads(double factor) override;
  // One update of the local shards, then the parameter all-gather.
  void step(double lr) override;
  int64_t step_count() const override { return step_; }
  int64_t state_bytes() const override;
  OptimizerState state() override;
  void load_state(const OptimizerState& state) override;
  std::string name() const override { return "ZeRO-1 AdamW"; }

 private:
  std::vector<NamedParameter> params_;
  parallel::ZeroPartition partition_;
  AdamWOptions options_;
  NormShare norm_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_, decay_mask_;  // per bucket, shard-sized
  std::vector<torch::Tensor> norm_mask_;  // per bucket, shard-sized 0/1 in the parameters' dtype
  int64_t step_ = 0;
};

}  // namespace shardtune::core
