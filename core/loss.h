// Causal language-model loss. Returned as a *sum* over target tokens plus their count, so that the
// trainer can divide by the number of target tokens in the whole global batch: then gradient
// accumulation and data parallelism give the same gradient as one large batch, token for token.
#pragma once

#include <torch/torch.h>

#include "core/example.h"
#include "core/shard.h"
#include "parallel/tp_ops.h"

namespace shardtune::core {


struct LossSum {
  torch::Tensor sum;    // scalar, differentiable: sum of -log p(target) over counted tokens
  int64_t tokens = 0;   // number of counted (non -100) targets
};

// logits: [B, T, V]; labels: [B, T] aligned with the inputs (labels[t] is token t). Position t
// predicts labels[t + 1]; labels equal to -100 are ignored.
LossSum causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels);

// Vocab-parallel form (Megatron's VocabParallelCrossEntropy): `local_logits` [B, T, chunk] are this
// TP rank's vocabulary slice (`vocab`: split of the [vocab_size, hidden] embedding); the full
// logits are never gathered. Three reductions over the TP group: max of the row maxima, then one
// sum of [sum of exp, target logit]. Padding columns past the vocabulary are excluded. The backward
// needs no communication (softmax minus one-hot on the rank that holds the target). Equals
// causal_lm_loss of the gathered logits up to float rounding of the cross-rank sums; with tp = 1
// it is causal_lm_loss.
LossSum causal_lm_loss(const torch::Tensor& local_logits, const torch::Tensor& labels,
                       const ShardSpec& vocab, const parallel::TpGroup& tp);

// The same loss, computed by kernels::fused_cross_entropy when `fused` (one pass over the logits
// in forward and one in backward, fp32 math for bf16 logits, no shifted copy of the logits; the
// same TP reductions), else by the form above. The two agree to float rounding (the fused sum of
// exponentials is ordered differently): tests/test_kernels.cpp.
LossSum causal_lm_loss(const torch::Tensor& local_logits, const torch::Tensor& labels,
                       const ShardSpec& vocab, const parallel::TpGroup& tp, bool fused);

// Number of targets that causal_lm_loss would count for these labels (no forward needed).
int64_t count_targets(const torch::Tensor& labels);

}  // namespace shardtune::core
