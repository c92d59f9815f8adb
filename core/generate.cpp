#include "core/generate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>

#include "core/model.h"

namespace shardtune::core {

std::vector<std::vector<int64_t>> generate(CausalLMImpl& model,
                                           const std::vector<std::vector<int64_t>>& prompts,
                                           int64_t pad_id, const GenerateOptions& options) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const int64_t b = static_cast<int64_t>(prompts.size());
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  // Left padding keeps every sequence's last token in the last column.
  auto ids = torch::full({b, static_cast<int64_t>(longest)}, pad_id, torch::kLong);
  auto mask = torch::zeros({b, static_cast<int64_t>(longest)}, torch::kLong);
  for (int64_t i = 0; i < b; ++i) {
    const auto& p = prompts[i];
    const int64_t off = static_cast<int64_t>(longest - p.size());
    for (size_t j = 0; j < p.size(); ++j) {
      ids[i][off + static_cast<int64_t>(j)] = p[j];
      mask[i][off + static_cast<int64_t>(j)] = 1;
    }
  }
  auto gen = at::detail::createCPUGenerator(options.seed);
  std::vector<std::vector<int64_t>> out(b);
  std::vector<bool> done(b, false);
  const int64_t max_len = model.config().max_position_embeddings;
  for (int64_t step = 0; step < options.max_new_tokens && ids.size(1) < max_len; ++step) {
    // Under TP every rank gathers the same full row, so all ranks sample the same token.
    auto logits = model.gather_logits(model.forward(ids, mask).select(1, ids.size(1) - 1))
                      .to(torch::kFloat);  // [B, V]
    if (options.vocab_limit > 0 && options.vocab_limit < logits.size(1)) {
      logits.narrow(1, options.vocab_limit, logits.size(1) - options.vocab_limit)
          .fill_(-std::numeric_limits<float>::infinity());
    }
    torch::Tensor next;
    if (options.temperature <= 0.0) {
      next = logits.argmax(-1);
    } else {
      logits = logits / options.temperature;
      if (options.top_k > 0 && options.top_k < logits.size(1)) {
        auto kth = std::get<0>(logits.topk(options.top_k, -1)).select(1, options.top_k - 1);
        logits = logits.masked_fill(logits < kth.unsqueeze(1),
                                    -std::numeric_limits<float>::infinity());
      }
      next = torch::multinomial(torch::softmax(logits, -1), 1, false, gen).squeeze(1);
    }
    bool all_done = true;
    for (int64_t i = 0; i < b; ++i) {
      const int64_t tok = next[i].item<int64_t>();
      if (!done[i]) {
        if (tok == options.eos_id) {
          done[i] = true;
        } else {
          out[i].push_back(tok);
        }
      }
      all_done = all_done && done[i];
    }
    if (all_done) break;
    ids = torch::cat({ids, next.unsqueeze(1)}, 1);
    mask = torch::cat({mask, torch::ones({b, 1}, torch::kLong)}, 1);
  }
  model.train(was_training);
  return out;
}

}  // namespace shardtune::core
