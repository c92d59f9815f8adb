#include "parallel/zero_partition.h"

#include <stdexcept>

namespace shardtune::parallel {

ZeroPartition::ZeroPartition(std::vector<torch::Tensor> params, GradSync& sync, Communicator& dp)
    : params_(std::move(params)), sync_(sync), dp_(dp) {
  if (!sync_.sharded()) throw std::logic_error("ZeroPartition needs a GradSync in sharded mode");
  torch::NoGradGuard no_grad;
  for (int64_t b = 0; b < sync_.num_buckets(); ++b) {
    const auto opts = params_[sync_.bucket_params(b).front()].options().requires_grad(false);
    auto flat = torch::zeros({sync_.bucket_numel(b)}, opts);
    for (size_t i : sync_.bucket_params(b)) {
      auto& p = params_[i];
      auto view = flat.narrow(0, sync_.offset_in_bucket(i), p.numel());
      view.copy_(p.reshape({-1}));
      p.set_data(view.view(p.sizes()));
    }
    flat_params_.push_back(flat);
  }
}

int64_t ZeroPartition::shard_numel(int64_t bucket) const {
  return sync_.bucket_numel(bucket) / dp_.size();
}

torch::Tensor ZeroPartition::param_shard(int64_t bucket) {
  const int64_t shard = shard_numel(bucket);
  return flat_params_[static_cast<size_t>(bucket)].narrow(0, dp_.rank() * shard, shard);
}

std::vector<torch::Tensor> ZeroPartition::shard_masks(const std::vector<bool>& flags) const {
  if (flags.size() != params_.size()) {
    throw std::logic_error("ZeroPartition::shard_masks: one flag per parameter");
  }
  std::vector<torch::Tensor> out;
  for (int64_t b = 0; b < sync_.num_buckets(); ++b) {
    auto mask = torch::zeros({sync_.bucket_numel(b)}, torch::kBool);
    for (size_t i : sync_.bucket_params(b)) {
      if (flags[i]) mask.narrow(0, sync_.offset_in_bucket(i), params_[i].numel()).fill_(true);
    }
    const int64_t shard = shard_numel(b);
    out.push_back(mask.narrow(0, dp_.rank() * shard, shard).clone());
  }
  return out;
}

std::vector<torch::Tensor> ZeroPartition::zero_shards() const {
  std::vector<torch::Tensor> out;
  for (int64_t b = 0; b < sync_.num_buckets(); ++b) {
    out.push_back(torch::zeros({shard_numel(b)}, flat_params_[static_cast<size_t>(b)].options()));
  }
  return out;
}

WorkPtr ZeroPartition::gather_async(int64_t bucket) {
  auto& flat = flat_params_[static_cast<size_t>(bucket)];
  // The all-gather reads this rank's piece from inside `flat` (allowed by the contract).
  return dp_.all_gather_async(flat, param_shard(bucket));
}

std::vector<torch::Tensor> ZeroPartition::gather_full(const std::vector<torch::Tensor>& shards) {
  std::vector<torch::Tensor> full(params_.size());
  for (int64_t b = 0; b < sync_.num_buckets(); ++b) {
    const auto& shard = shards[static_cast<size_t>(b)];
    auto bucket = torch::empty({sync_.bucket_numel(b)}, shard.options());
    dp_.all_gather(bucket, shard);
    for (size_t i : sync_.bucket_params(b)) {
      const auto& p = params_[i];
      full[i] = bucket.narrow(0, sync_.offset_in_bucket(i), p.numel()).view(p.sizes());
    }
  }
  return full;
}

void ZeroPartition::scatter_full(const std::vector<torch::Tensor>& full,
                                 std::vector<torch::Tensor>& shards) const {
  if (full.size() != params_.size()) {
    throw std::logic_error("ZeroPartition::scatter_full: one tensor per parameter");
  }
  torch::NoGradGuard no_grad;
  for (int64_t b = 0; b < sync_.num_buckets(); ++b) {
    auto& shard = shards[static_cast<size_t>(b)];
    auto bucket = torch::zeros({sync_.bucket_numel(b)}, shard.options());
    for (size_t i : sync_.bucket_params(b)) {
      bucket.narrow(0, sync_.offset_in_bucket(i), params_[i].numel()).copy_(full[i].reshape({-1}));
    }
    const int64_t n = shard_numel(b);
    shard.copy_(bucket.narrow(0, dp_.rank() * n, n));
  }
}

}  // namespace shardtune::parallel
