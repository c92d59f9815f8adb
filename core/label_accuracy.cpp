#include "core/label_accuracy.h"

#include <map>

#include "core/batch.h"
#include "core/model.h"

namespace shardtune::core {

torch::Tensor has_targets(const torch::Tensor& labels) {
  return labels.slice(1, 1).ne(kIgnoreIndex).any(1);
}

torch::Tensor label_exact_match(const torch::Tensor& logits, const torch::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 3 && labels.dim() == 2 && logits.size(0) == labels.size(0) &&
                  logits.size(1) == labels.size(1),
              "label_exact_match: logits [B, T, V] and labels [B, T] expected");
  if (labels.size(1) < 2) return torch::zeros({labels.size(0)}, torch::kBool);
  // Position t predicts token t + 1 (the first label is BOS/prompt, never a target).
  const auto predicted = logits.slice(1, 0, -1).argmax(-1);
  const auto targets = labels.slice(1, 1);
  const auto counted = targets.ne(kIgnoreIndex);
  const auto right_or_ignored = predicted.eq(targets).logical_or(counted.logical_not());
  return right_or_ignored.all(1).logical_and(counted.any(1));
}

LabelScore score_labels(CausalLMImpl& model, const std::vector<Example>& examples,
                        parallel::Communicator& dp, int64_t micro_batch, int64_t pad_id) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const int64_t n = static_cast<int64_t>(examples.size());
  int64_t scored = 0, correct = 0;
  std::vector<const Example*> group;
  auto flush = [&]() {
    if (group.empty()) return;
    auto b = collate(group, pad_id);
    // Under TP each rank holds a vocabulary slice; argmax needs the whole row.
    const auto logits = model.gather_logits(model.forward(b.input_ids, b.attention_mask));
    scored += has_targets(b.labels).sum().item<int64_t>();
    correct += label_exact_match(logits, b.labels).sum().item<int64_t>();
    group.clear();
  };
  for (int64_t i = dp.rank(); i < n; i += dp.size()) {
    group.push_back(&examples[static_cast<size_t>(i)]);
    if (static_cast<int64_t>(group.size()) == micro_batch) flush();
  }
  flush();
  auto counts = torch::tensor({scored, correct}, torch::kLong);
  dp.all_reduce(counts, parallel::ReduceOp::kSum);
  model.train(was_training);
  return LabelScore{counts[0].item<int64_t>(), counts[1].item<int64_t>()};
}

std::vector<int64_t> target_tokens(const Example& example) {
  std::vector<int64_t> out;
  for (size_t i = 1; i < example.labels.size(); ++i) {
    if (example.labels[i] != kIgnoreIndex) out.push_back(example.labels[i]);
  }
  return out;
}

MajorityBaseline majority_baseline(const std::vector<Example>& train,
                                   const std::vector<Example>& eval) {
  // Count, remembering first appearance so that ties resolve the same way on every platform.
  std::map<std::vector<int64_t>, std::pair<int64_t, size_t>> counts;  // label -> (count, first)
  for (size_t i = 0; i < train.size(); ++i) {
    auto label = target_tokens(train[i]);
    if (label.empty()) continue;
    auto [it, inserted] = counts.try_emplace(std::move(label), 0, i);
    ++it->second.first;
  }
  MajorityBaseline best;
  size_t best_first = 0;
  for (const auto& [label, entry] : counts) {
    if (entry.first > best.train_count ||
        (entry.first == best.train_count && entry.second < best_first)) {
      best.label = label;
      best.train_count = entry.first;
      best_first = entry.second;
    }
  }
  for (const auto& e : eval) {
    const auto label = target_tokens(e);
    if (label.empty()) continue;
    ++best.eval_examples;
    if (!best.label.empty() && label == best.label) ++best.eval_matches;
  }
  return best;
}

}  // namespace shardtune::core
