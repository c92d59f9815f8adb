#include "strategies/sft.h"

#include <algorithm>

#include "base/errors.h"
#include "base/strings.h"
#include "core/batch.h"
#include "core/generate.h"
#include "core/loss.h"
#include "core/model.h"

namespace shardtune::strategies {

std::vector<PseudoLabel> pseudo_label(core::CausalLMImpl& model, const core::TrainingData& data,
                                      const std::vector<std::string>& prompts,
                                      const SelfTrainingOptions& options) {
  constexpr size_t kChunk = 16;  // prompts generated together
  const auto& tokenizer = data.tokenizer();
  core::GenerateOptions g;
  g.max_new_tokens = options.max_new_tokens;
  g.eos_id = tokenizer.eos_id();
  g.vocab_limit = tokenizer.vocab_size();
  std::vector<PseudoLabel> out;
  for (size_t begin = 0; begin < prompts.size(); begin += kChunk) {
    const size_t end = std::min(prompts.size(), begin + kChunk);
    std::vector<std::vector<int64_t>> ids;
    for (size_t i = begin; i < end; ++i) {
      auto p = tokenizer.encode(prompts[i]);
      p.insert(p.begin(), tokenizer.bos_id());
      ids.push_back(std::move(p));
    }
    const auto generated = core::generate(model, ids, tokenizer.pad_id(), g);
    for (size_t i = begin; i < end; ++i) {
      PseudoLabel label{prompts[i], tokenizer.decode(generated[i - begin]), 0.0, false};
      const auto example = data.tokenize(label.prompt, label.response, /*as_training_data=*/false);
      auto batch = core::collate({&example}, tokenizer.pad_id());
      torch::NoGradGuard no_grad;
      const bool was_training = model.is_training();
      model.eval();
      auto loss = core::causal_lm_loss(model.forward(batch.input_ids, batch.attention_mask),
                                       batch.labels, model.vocab_spec(), model.tp());
      model.train(was_training);
      label.mean_logprob =
          loss.tokens > 0 ? -loss.sum.item<double>() / static_cast<double>(loss.tokens) : -1e30;
      label.accepted = !label.response.empty() && label.mean_logprob >= options.threshold;
      out.push_back(std::move(label));
    }
  }
  return out;
}

SftStrategy::SftStrategy(core::StrategyOptions options) {
  auto& st = self_training_;
  st.prompts_file = core::take_option(options, "self_training_prompts", "");
  st.threshold = core::take_double(options, "sft", "self_training_threshold", st.threshold);
  st.max_new_tokens =
      core::take_int(options, "sft", "self_training_max_new_tokens", st.max_new_tokens);
  st.max_prompts = core::take_int(options, "sft", "self_training_max_prompts", st.max_prompts);
  core::reject_unknown_options(options, "sft");
  require(st.max_new_tokens >= 1, "[strategy.sft] self_training_max_new_tokens must be >= 1");
  require(st.max_prompts >= 0, "[strategy.sft] self_training_max_prompts must be >= 0");
}

void SftStrategy::apply(core::CausalLMImpl& model) {
  for (auto& p : model.parameters()) p.set_requires_grad(true);
}

void SftStrategy::prepare_data(core::CausalLMImpl& model, core::TrainingData& data) {
  pseudo_labels_.clear();
  if (!self_training_.enabled()) return;
  const auto prompts = data.read_prompts(self_training_.prompts_file, self_training_.max_prompts);
  pseudo_labels_ = pseudo_label(model, data, prompts, self_training_);
  auto& train = data.train();
  const size_t gold = train.size();
  for (const auto& l : pseudo_labels_) {
    if (l.accepted) train.push_back(data.tokenize(l.prompt, l.response, /*as_training_data=*/true));
  }
  data.report("self-training: " + std::to_string(train.size() - gold) + " of " +
              std::to_string(pseudo_labels_.size()) + " pseudo-labels pass mean log-prob >= " +
              base::format_double(self_training_.threshold) + " and join " +
              std::to_string(gold) + " gold examples");
}

}  // namespace shardtune::strategies
