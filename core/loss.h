// Causal language-model loss. Returned as a *sum* over target tokens plus their count, so that the
// trainer can divide by the number of target tokens in the whole global batch: then gradient
// accumulation and data parallelism give the same gradient as one large batch, token for token.
#pragma once

#include <torch/torch.h>

#include "core/example.h"

namespace shardtune::core {


struct LossSum {
  torch::Tensor sum;    // scalar, differentiable: sum of -log p(target) over counted tokens
  int64_t tokens = 0;   // number of counted (non -100) targets
};

// logits: [B, T, V]; labels: [B, T] aligned with the inputs (labels[t] is token t). Position t
// predicts labels[t + 1]; labels equal to -100 are ignored.
LossSum causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels);

// Number of targets that causal_lm_loss would count for these labels (no forward needed).
int64_t count_targets(const torch::Tensor& labels);

}  // namespace shardtune::core
