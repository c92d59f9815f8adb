// Optimizers: one interface (Optimizer) for AdamW and ZeRO-1 AdamW (core/zero_adamw.h), global-norm
// gradient clipping across ranks, and the learning-rate schedule (linear warm-up then cosine).
//
// AdamW (Loshchilov & Hutter 2019: decoupled weight decay) is ShardTune's own rather than
// torch::optim's, so that the state is plain tensors (checkpointable and shardable by the same
// ShardSpec machinery as parameters) and behaves identically on LibTorch 1.13 and 2.x.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace shardtune::core {

struct NamedParameter {
  std::string name;
  torch::Tensor param;  // a leaf with requires_grad
};

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // applied to parameters with dim >= 2 only (not norms, biases)
  // kernels::fused_adamw (one pass over all tensors, each element read and written once) instead
  // of adamw_update's LibTorch ops: the same formula, equal to 1e-6 relative
  // (tests/test_kernels.cpp); AdamW and ZeroAdamW then still agree bitwise with each other.
  bool fused = true;
};

// The AdamW moments of every parameter at the parameter's (TP-local) shape, in parameter order,
// and the step count (bias correction): what a checkpoint stores.
struct OptimizerState {
  std::vector<torch::Tensor> exp_avg, exp_avg_sq;
  int64_t step = 0;
};

// Which gradients this rank counts in the global norm, and over which groups the counts add up.
// Every parameter must be counted exactly once over all ranks: TP-sharded gradients on every TP
// rank, TP-replicated ones on TP rank 0 only (Megatron's param_is_not_tensor_parallel_duplicate).
struct NormShare {
  std::vector<bool> counted;                   // per parameter; empty = all
  std::vector<parallel::Communicator*> groups;  // summed over, in order; empty = this rank alone
};

// An optimizer over this rank's trainable parameters. Methods marked collective run
// communication: every rank of the groups involved calls them in the same order.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // This rank's share of the squared global gradient norm; summing it over norm_groups() gives
  // the global value (NormShare).
  virtual double local_grad_norm_squared() const = 0;
  virtual const std::vector<parallel::Communicator*>& norm_groups() const = 0;
  // Multiplies the gradients the next step() uses by `factor` (clipping).
  virtual void scale_grads(double factor) = 0;
  // One update at learning rate `lr` (ZeRO-1: collective over DP).
  virtual void step(double lr) = 0;
  virtual int64_t step_count() const = 0;
  // Bytes of optimizer state this rank holds.
  virtual int64_t state_bytes() const = 0;
  // The full moments (ZeRO-1: collective, gathered over DP).
  virtual OptimizerState state() = 0;
  // Not collective: every rank passes the full moments; each keeps what it holds.
  virtual void load_state(const OptimizerState& state) = 0;
  // "AdamW" or "ZeRO-1 AdamW", for logs.
  virtual std::string name() const = 0;
};

// Clips the global gradient norm to `max_norm` (<= 0: measure only): reduces
// local_grad_norm_squared() over the optimizer's norm groups, then scales the gradients by
// clip_coefficient. Collective over those groups. Returns the norm before clipping.
double clip_grad_norm(Optimizer& optimizer, double max_norm);

// The factor that clipping applies: max_norm / (norm + 1e-6) when norm > max_norm, else 1
// (max_norm <= 0: no clipping).
double clip_coefficient(double norm, double max_norm);

// Sum of squared L2 norms of the gradients held here (undefined grads skipped).
double grad_norm_squared(const std::vector<NamedParameter>& params);

class AdamW final : public Optimizer {
 public:
  AdamW(std::vector<NamedParameter> params, AdamWOptions options, NormShare norm = {});

  // One update at learning rate `lr` with the gradients currently in param.grad(). Parameters
  // whose grad is undefined are skipped (their step count still advances in lock-step).
  //   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
  //   p -= lr * wd * p  (decoupled, dim >= 2 only)
  //   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
  void step(double lr) override;
  double local_grad_norm_squared() const override;
  const std::vector<parallel::Communicator*>& norm_groups() const override { return norm_.groups; }
  void scale_grads(double factor) override;
  int64_t step_count() const override { return step_; }
  int64_t state_bytes() const override;
  OptimizerState state() override { return {exp_avg_, exp_avg_sq_, step_}; }
  void load_state(const OptimizerState& state) override;
  std::string name() const override { return "AdamW"; }

  const std::vector<NamedParameter>& params() const { return params_; }

 private:
  std::vector<NamedParameter> params_;
  AdamWOptions options_;
  NormShare norm_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  int64_t step_ = 0;
};

// The AdamW update of one tensor at step t (1-based), shared by AdamW and ZeroAdamW.
// decay_mask: undefined = decay all of p (if weight_decay != 0); else a bool tensor like p.
void adamw_update(torch::Tensor& p, const torch::Tensor& g, torch::Tensor& m, torch::Tensor& v,
                  int64_t t, double lr, const AdamWOptions& o, const torch::Tensor& decay_mask);

struct LrSchedule {
  double lr = 1e-3;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  // Learning rate of step `step` (0-based): lr * (step + 1) / warmup during warm-up, then cosine
  // from lr down to min_lr at the last step.
  double at(int64_t step) const;
};

}  // namespace shardtune::core
