// AdamW (Loshchilov & Hutter 2019: decoupled weight decay), the learning-rate schedule (linear
// warm-up then cosine decay) and global-norm gradient clipping. ShardTune keeps its own AdamW
// rather than torch::optim's so that the state is plain named tensors (checkpointable and
// shardable by the same ShardSpec machinery as parameters) and behaves identically on LibTorch
// 1.13 and 2.x.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

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
};

class AdamW {
 public:
  AdamW(std::vector<NamedParameter> params, AdamWOptions options);

  // One update at learning rate `lr` with the gradients currently in param.grad(). Parameters
  // whose grad is undefined are skipped (their step count still advances in lock-step).
  //   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
  //   p -= lr * wd * p  (decoupled, dim >= 2 only)
  //   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
  void step(double lr);
  void zero_grad();

  int64_t step_count() const { return step_; }
  void set_step_count(int64_t step) { step_ = step; }
  const std::vector<NamedParameter>& params() const { return params_; }
  std::vector<torch::Tensor>& exp_avg() { return exp_avg_; }
  std::vector<torch::Tensor>& exp_avg_sq() { return exp_avg_sq_; }
  // Bytes held by optimizer state (exp_avg + exp_avg_sq).
  int64_t state_bytes() const;

 private:
  std::vector<NamedParameter> params_;
  AdamWOptions options_;
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

// Sum of squared L2 norms of the gradients held here (undefined grads skipped). Callers reduce it
// across ranks before taking the root, so the norm is global.
double grad_norm_squared(const std::vector<NamedParameter>& params);
// The factor that clipping applies: max_norm / (norm + 1e-6) when norm > max_norm, else 1
// (max_norm <= 0: no clipping).
double clip_coefficient(double norm, double max_norm);
// Scales every grad by clip_coefficient(norm, max_norm).
void scale_grads(const std::vector<NamedParameter>& params, double norm, double max_norm);

}  // namespace shardtune::core
