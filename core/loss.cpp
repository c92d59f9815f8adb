#include "core/loss.h"

namespace shardtune::core {

LossSum causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t t = logits.size(1);
  auto shifted_logits = logits.narrow(1, 0, t - 1).reshape({-1, logits.size(-1)});
  auto targets = labels.narrow(1, 1, t - 1).reshape({-1});
  auto sum = torch::nn::functional::cross_entropy(
      shifted_logits.to(torch::kFloat), targets,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex).reduction(
          torch::kSum));
  return {sum, count_targets(labels)};
}

int64_t count_targets(const torch::Tensor& labels) {
  return labels.narrow(1, 1, labels.size(1) - 1).ne(kIgnoreIndex).sum().item<int64_t>();
}

}  // namespace shardtune::core
