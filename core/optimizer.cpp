#include "core/optimizer.h"

#include <cmath>

#include "core/kernels/fused_ops.h"

namespace shardtune::core {

AdamW::AdamW(std::vector<NamedParameter> params, AdamWOptions options, NormShare norm)
    : params_(std::move(params)), options_(options), norm_(std::move(norm)) {
  for (auto& p : params_) {
    exp_avg_.push_back(torch::zeros_like(p.param, torch::MemoryFormat::Contiguous));
    exp_avg_sq_.push_back(torch::zeros_like(p.param, torch::MemoryFormat::Contiguous));
  }
}

void adamw_update(torch::Tensor& p, const torch::Tensor& g, torch::Tensor& m, torch::Tensor& v,
                  int64_t t, double lr, const AdamWOptions& o, const torch::Tensor& decay_mask) {
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(t));
  m.mul_(o.beta1).add_(g, 1.0 - o.beta1);
  v.mul_(o.beta2).addcmul_(g, g, 1.0 - o.beta2);
  if (o.weight_decay != 0.0) {
    if (decay_mask.defined()) {
      // Same float factor as the unmasked branch, so sharded and plain AdamW agree bitwise.
      const auto decayed = torch::scalar_tensor(1.0 - lr * o.weight_decay, p.options());
      p.mul_(torch::where(decay_mask, decayed, torch::scalar_tensor(1.0, p.options())));
    } else {
      p.mul_(1.0 - lr * o.weight_decay);
    }
  }
  auto denom = (v.sqrt() * (1.0 / std::sqrt(bc2))).add_(o.eps);
  p.addcdiv_(m, denom, -lr / bc1);
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  if (options_.fused) {
    // Tensors the fused kernel cannot take (non-contiguous) go through adamw_update.
    std::vector<torch::Tensor> p, g, m, v;
    std::vector<bool> decay;
    for (size_t i = 0; i < params_.size(); ++i) {
      auto& param = params_[i].param;
      const auto& grad = param.grad();
      if (!grad.defined()) continue;
      if (param.is_contiguous() && grad.is_contiguous() &&
          param.scalar_type() == torch::kFloat && grad.scalar_type() == torch::kFloat) {
        p.push_back(param);
        g.push_back(grad);
        m.push_back(exp_avg_[i]);
        v.push_back(exp_avg_sq_[i]);
        decay.push_back(param.dim() >= 2);
      } else {
        AdamWOptions o = options_;
        if (param.dim() < 2) o.weight_decay = 0.0;
        adamw_update(param, grad, exp_avg_[i], exp_avg_sq_[i], step_, lr, o, {});
      }
    }
    const kernels::AdamWHyper h{lr, options_.beta1, options_.beta2, options_.eps,
                                options_.weight_decay, step_};
    if (!p.empty()) kernels::fused_adamw(p, g, m, v, decay, h);
    return;
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i].param;
    const auto& g = p.grad();
    if (!g.defined()) continue;
    AdamWOptions o = options_;
    if (p.dim() < 2) o.weight_decay = 0.0;  // no decay on norms and biases
    adamw_update(p, g, exp_avg_[i], exp_avg_sq_[i], step_, lr, o, {});
  }
}

double AdamW::local_grad_norm_squared() const {
  if (norm_.counted.empty()) return grad_norm_squared(params_);
  std::vector<NamedParameter> counted;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (norm_.counted[i]) counted.push_back(params_[i]);
  }
  return grad_norm_squared(counted);
}

void AdamW::scale_grads(double factor) {
  torch::NoGradGuard no_grad;
  for (const auto& p : params_) {
    if (p.param.grad().defined()) p.param.mutable_grad().mul_(factor);
  }
}

void AdamW::load_state(const OptimizerState& state) {
  TORCH_CHECK(state.exp_avg.size() == params_.size() && state.exp_avg_sq.size() == params_.size(),
              "AdamW::load_state: one exp_avg and exp_avg_sq per parameter");
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    exp_avg_[i].copy_(state.exp_avg[i]);
    exp_avg_sq_[i].copy_(state.exp_avg_sq[i]);
  }
  step_ = state.step;
}

int64_t AdamW::state_bytes() const {
  int64_t bytes = 0;
  for (size_t i = 0; i < exp_avg_.size(); ++i) {
    bytes += exp_avg_[i].numel() * exp_avg_[i].element_size();
    bytes += exp_avg_sq_[i].numel() * exp_avg_sq_[i].element_size();
  }
  return bytes;
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) {
    return lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  const int64_t decay_steps = total_steps - warmup_steps;
  if (decay_steps <= 1) return lr;
  const double progress =
      static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps - 1);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * std::min(progress, 1.0)));
  return min_lr + (lr - min_lr) * cosine;
}

double grad_norm_squared(const std::vector<NamedParameter>& params) {
  double sq = 0.0;
  for (const auto& p : params) {
    const auto& g = p.param.grad();
    if (!g.defined()) continue;
    const double n = g.norm().item<double>();
    sq += n * n;
  }
  return sq;
}

double clip_coefficient(double norm, double max_norm) {
  return (max_norm <= 0.0 || norm <= max_norm) ? 1.0 : max_norm / (norm + 1e-6);
}

double clip_grad_norm(Optimizer& optimizer, double max_norm) {
  auto sq = torch::tensor({optimizer.local_grad_norm_squared()}, torch::kDouble);
  for (auto* group : optimizer.norm_groups()) group->all_reduce(sq, parallel::ReduceOp::kSum);
  const double norm = std::sqrt(sq.item<double>());
  const double coef = clip_coefficient(norm, max_norm);
  if (coef != 1.0) optimizer.scale_grads(coef);
  return norm;
}

}  // namespace shardtune::core
