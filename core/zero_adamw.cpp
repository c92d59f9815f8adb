#include "core/zero_adamw.h"

#include "core/kernels/fused_ops.h"

namespace shardtune::core {

namespace {
std::vector<torch::Tensor> tensors_of(const std::vector<NamedParameter>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.param);
  return out;
}
}  // namespace

ZeroAdamW::ZeroAdamW(std::vector<NamedParameter> params, parallel::GradSync& sync,
                     parallel::Communicator& dp, AdamWOptions options, NormShare norm)
    : params_(std::move(params)), partition_(tensors_of(params_), sync, dp), options_(options),
      norm_(std::move(norm)) {
  exp_avg_ = partition_.zero_shards();
  exp_avg_sq_ = partition_.zero_shards();
  // No weight decay on norms and biases (dim < 2), as in AdamW.
  std::vector<bool> decays;
  for (const auto& p : params_) decays.push_back(p.param.dim() >= 2);
  decay_mask_ = partition_.shard_masks(decays);
  if (norm_.counted.empty()) norm_.counted.assign(params_.size(), true);
  const auto counted = partition_.shard_masks(norm_.counted);
  for (size_t b = 0; b < counted.size(); ++b) {
    norm_mask_.push_back(counted[b].to(exp_avg_[b].scalar_type()));
  }
}

double ZeroAdamW::local_grad_norm_squared() const {
  double sq = 0.0;
  for (int64_t b = 0; b < partition_.num_buckets(); ++b) {
    const auto& g = partition_.grad_shard(b);
    const double v = (g * norm_mask_[static_cast<size_t>(b)]).norm().item<double>();
    sq += v * v;
  }
  return sq;
}

void ZeroAdamW::scale_grads(double factor) {
  for (int64_t b = 0; b < partition_.num_buckets(); ++b) partition_.grad_shard(b).mul_(factor);
}

void ZeroAdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  std::vector<parallel::WorkPtr> gathers;
  for (int64_t b = 0; b < partition_.num_buckets(); ++b) {
    auto p = partition_.param_shard(b);
    const auto i = static_cast<size_t>(b);
    if (options_.fused) {
      // Bitwise fused_adamw on the same elements, so ZeRO-1 equals plain fused AdamW.
      const kernels::AdamWHyper h{lr, options_.beta1, options_.beta2, options_.eps,
                                  options_.weight_decay, step_};
      kernels::fused_adamw_masked(p, partition_.grad_shard(b), exp_avg_[i], exp_avg_sq_[i],
                                  decay_mask_[i], h);
    } else {
      adamw_update(p, partition_.grad_shard(b), exp_avg_[i], exp_avg_sq_[i], step_, lr, options_,
                   decay_mask_[i]);
    }
    // Bucket b's gather overlaps the update of bucket b + 1.
    gathers.push_back(partition_.gather_async(b));
  }
  for (auto& w : gathers) w->wait();
}

int64_t ZeroAdamW::state_bytes() const {
  int64_t bytes = 0;
  for (size_t b = 0; b < exp_avg_.size(); ++b) {
    bytes += (exp_avg_[b].numel() + exp_avg_sq_[b].numel()) * exp_avg_[b].element_size();
  }
  return bytes;
}

OptimizerState ZeroAdamW::state() {
  return {partition_.gather_full(exp_avg_), partition_.gather_full(exp_avg_sq_), step_};
}

void ZeroAdamW::load_state(const OptimizerState& state) {
  partition_.scatter_full(state.exp_avg, exp_avg_);
  partition_.scatter_full(state.exp_avg_sq, exp_avg_sq_);
  step_ = state.step;
}

}  // namespace shardtune::core
