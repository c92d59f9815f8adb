// Exact-match accuracy of labels: the held-out metric of classification-like supervised tasks
// (e.g. WordNet's lexicographer category from a gloss, [data] wordnet_task=lexname), reached with
// `shardtune score`.
//
// An example's label is its target tokens (labels != kIgnoreIndex, in order, EOS included when it
// was not truncated). It counts as correct when at every target position the model's most likely
// next token is the target token, with the prompt and the earlier label tokens as context. That
// is exactly "greedy decoding after the prompt reproduces the label and then stops", computed in
// one forward pass per batch instead of one per token, and it needs no parsing of generated text.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "core/example.h"
#include "parallel/communicator.h"

namespace shardtune::core {

class CausalLMImpl;

// logits: [B, T, V] full vocabulary (not a TP slice); labels: [B, T] aligned with the inputs
// (position t predicts labels[t + 1], as in causal_lm_loss). Returns [B] bool: every target
// predicted by argmax. A row without targets is false (see has_targets).
torch::Tensor label_exact_match(const torch::Tensor& logits, const torch::Tensor& labels);
// [B] bool: the row has at least one target.
torch::Tensor has_targets(const torch::Tensor& labels);

struct LabelScore {
  int64_t examples = 0;  // examples with at least one target token
  int64_t correct = 0;   // of those, labels reproduced exactly
  double accuracy() const {
    return examples > 0 ? static_cast<double>(correct) / static_cast<double>(examples) : 0.0;
  }
};

// Exact-match accuracy over `examples` without dropout: each DP rank scores a strided share in
// micro-batches (as core::evaluate), TP ranks gather the logits; the counts are all-reduced, so
// every rank gets the same result. Collective over `dp` (and TP inside the model).
LabelScore score_labels(CausalLMImpl& model, const std::vector<Example>& examples,
                        parallel::Communicator& dp, int64_t micro_batch, int64_t pad_id);

// The label of an example: its target token ids in order.
std::vector<int64_t> target_tokens(const Example& example);

// The majority-class baseline: the most frequent label among `train` (ties: the one seen first)
// and the share of `eval` examples whose label is exactly it, i.e. the accuracy of a model that
// always answers the commonest training label.
struct MajorityBaseline {
  std::vector<int64_t> label;
  int64_t train_count = 0;
  int64_t eval_examples = 0;  // eval examples with a label
  int64_t eval_matches = 0;
  double accuracy() const {
    return eval_examples > 0
               ? static_cast<double>(eval_matches) / static_cast<double>(eval_examples)
               : 0.0;
  }
};
MajorityBaseline majority_baseline(const std::vector<Example>& train,
                                   const std::vector<Example>& eval);

}  // namespace shardtune::core
