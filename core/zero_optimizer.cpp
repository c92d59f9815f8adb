#include "core/zero_optimizer.h"

namespace shardtune::core {

ZeroAdamW::ZeroAdamW(std::vector<NamedParameter> params, parallel::GradSync& sync,
                     parallel::Communicator& dp, AdamWOptions options)
    : params_(std::move(params)), sync_(sync), dp_(dp), options_(options) {
  TORCH_CHECK(sync_.sharded(), "ZeroAdamW needs a GradSync in sharded mode");
  torch::NoGradGuard no_grad;
  const int64_t n = dp_.size(), r = dp_.rank();
  for (int64_t b = 0; b < sync_.num_buckets(); ++b) {
    const int64_t numel = sync_.bucket_numel(b), shard = numel / n;
    const auto opts = params_[sync_.bucket_params(b).front()].param.options().requires_grad(false);
    auto flat = torch::zeros({numel}, opts);
    auto mask = torch::zeros({numel}, opts.dtype(torch::kBool));
    for (size_t i : sync_.bucket_params(b)) {
      auto& p = params_[i].param;
      auto view = flat.narrow(0, sync_.offset_in_bucket(i), p.numel());
      view.copy_(p.reshape({-1}));
      // No weight decay on norms and biases (dim < 2), as in AdamW.
      if (p.dim() >= 2) mask.narrow(0, sync_.offset_in_bucket(i), p.numel()).fill_(true);
      p.set_data(view.view(p.sizes()));
    }
    flat_params_.push_back(flat);
    exp_avg_.push_back(torch::zeros({shard}, opts));
    exp_avg_sq_.push_back(torch::zeros({shard}, opts));
    decay_mask_.push_back(mask.narrow(0, r * shard, shard).clone());
  }
}

double ZeroAdamW::shard_grad_norm_squared() const {
  double sq = 0.0;
  for (int64_t b = 0; b < sync_.num_buckets(); ++b) {
    auto g = sync_.shard_grad(b);
    if (!norm_mask_.empty()) g = g * norm_mask_[static_cast<size_t>(b)];
    const double v = g.norm().item<double>();
    sq += v * v;
  }
  return sq;
}

void ZeroAdamW::set_norm_counted(const std::vector<bool>& counted) {
  TORCH_CHECK(counted.size() == params_.size(), "set_norm_counted: one flag per parameter");
  norm_mask_.clear();
  const int64_t n = dp_.size(), r = dp_.rank();
  for (int64_t b = 0; b < sync_.num_buckets(); ++b) {
    const int64_t numel = sync_.bucket_numel(b), shard = numel / n;
    auto mask = torch::zeros({numel}, torch::kFloat);
    for (size_t i : sync_.bucket_params(b)) {
      if (counted[i]) mask.narrow(0, sync_.offset_in_bucket(i), params_[i].param.numel()).fill_(1.0);
    }
    norm_mask_.push_back(mask.narrow(0, r * shard, shard).clone().to(
        params_[sync_.bucket_params(b).front()].param.scalar_type()));
  }
}

void ZeroAdamW::scale_shard_grads(double factor) {
  for (int64_t b = 0; b < sync_.num_buckets(); ++b) sync_.shard_grad(b).mul_(factor);
}

void ZeroAdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  const int64_t n = dp_.size(), r = dp_.rank();
  std::vector<parallel::WorkPtr> gathers;
  for (int64_t b = 0; b < sync_.num_buckets(); ++b) {
    auto& flat = flat_params_[static_cast<size_t>(b)];
    const int64_t shard = flat.numel() / n;
    auto p = flat.narrow(0, r * shard, shard);
    adamw_update(p, sync_.shard_grad(b), exp_avg_[b], exp_avg_sq_[b], step_, lr, options_,
                 decay_mask_[b]);
    // The all-gather reads this rank's piece from inside `flat` (allowed by the contract).
    gathers.push_back(dp_.all_gather_async(flat, p));
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

torch::Tensor ZeroAdamW::full_from_shards(int64_t bucket, const torch::Tensor& shard) {
  auto full = torch::empty({sync_.bucket_numel(bucket)}, shard.options());
  dp_.all_gather(full, shard);
  return full;
}

void ZeroAdamW::gather_state(std::vector<torch::Tensor>& exp_avg,
                             std::vector<torch::Tensor>& exp_avg_sq) {
  exp_avg.assign(params_.size(), {});
  exp_avg_sq.assign(params_.size(), {});
  for (int64_t b = 0; b < sync_.num_buckets(); ++b) {
    auto m = full_from_shards(b, exp_avg_[b]);
    auto v = full_from_shards(b, exp_avg_sq_[b]);
    for (size_t i : sync_.bucket_params(b)) {
      const auto& p = params_[i].param;
      exp_avg[i] = m.narrow(0, sync_.offset_in_bucket(i), p.numel()).view(p.sizes());
      exp_avg_sq[i] = v.narrow(0, sync_.offset_in_bucket(i), p.numel()).view(p.sizes());
    }
  }
}

void ZeroAdamW::set_state(const std::vector<torch::Tensor>& exp_avg,
                          const std::vector<torch::Tensor>& exp_avg_sq) {
  TORCH_CHECK(exp_avg.size() == params_.size() && exp_avg_sq.size() == params_.size(),
              "ZeroAdamW::set_state: one exp_avg and exp_avg_sq per parameter");
  torch::NoGradGuard no_grad;
  const int64_t n = dp_.size(), r = dp_.rank();
  for (int64_t b = 0; b < sync_.num_buckets(); ++b) {
    const int64_t numel = sync_.bucket_numel(b), shard = numel / n;
    auto m = torch::zeros({numel}, exp_avg_[b].options());
    auto v = torch::zeros({numel}, exp_avg_sq_[b].options());
    for (size_t i : sync_.bucket_params(b)) {
      const int64_t count = params_[i].param.numel();
      m.narrow(0, sync_.offset_in_bucket(i), count).copy_(exp_avg[i].reshape({-1}));
      v.narrow(0, sync_.offset_in_bucket(i), count).copy_(exp_avg_sq[i].reshape({-1}));
    }
    exp_avg_[b].copy_(m.narrow(0, r * shard, shard));
    exp_avg_sq_[b].copy_(v.narrow(0, r * shard, shard));
  }
}

}  // namespace shardtune::core
