#include "launch/self_training.h"

#include <spdlog/spdlog.h>

#include "core/batch.h"
#include "core/generate.h"
#include "core/loss.h"
#include "parallel/errors.h"

namespace shardtune::launch {

std::vector<PseudoLabel> pseudo_label(core::CausalLMImpl& model, const io::Tokenizer& tokenizer,
                                      const std::vector<std::string>& prompts,
                                      const strategies::SelfTrainingOptions& options,
                                      int64_t seq_len) {
  constexpr size_t kChunk = 16;  // prompts generated together
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
      PseudoLabel label{{prompts[i], tokenizer.decode(generated[i - begin]), {}}, 0.0, false};
      // Score exactly what the student will train on: the tokenized example's labelled tokens
      // (response and EOS), under the model that generated them.
      const auto example = io::tokenize(label.record, tokenizer, seq_len, false);
      auto batch = core::collate({&example}, tokenizer.pad_id());
      torch::NoGradGuard no_grad;
      const bool was_training = model.is_training();
      model.eval();
      auto loss = core::causal_lm_loss(model.forward(batch.input_ids, batch.attention_mask),
                                       batch.labels, model.vocab_spec(), model.tp());
      model.train(was_training);
      label.mean_logprob =
          loss.tokens > 0 ? -loss.sum.item<double>() / static_cast<double>(loss.tokens) : -1e30;
      label.accepted = !label.record.response.empty() && label.mean_logprob >= options.threshold;
      out.push_back(std::move(label));
    }
  }
  return out;
}

std::vector<PseudoLabel> add_self_training_data(const core::Strategy& strategy,
                                                core::CausalLMImpl& model,
                                                const io::Tokenizer& tokenizer,
                                                const Config& config, DataSets& sets) {
  const auto* sft = dynamic_cast<const strategies::SftStrategy*>(&strategy);
  if (!sft || !sft->self_training().enabled()) return {};
  const auto& options = sft->self_training();
  std::vector<std::string> prompts;
  for (const auto& r : io::read_jsonl(options.prompts_file)) {
    prompts.push_back(r.prompt.empty() ? r.response : r.prompt);
    if (options.max_prompts > 0 && static_cast<int64_t>(prompts.size()) == options.max_prompts) {
      break;
    }
  }
  auto labels = pseudo_label(model, tokenizer, prompts, options, config.train.seq_len);
  int64_t accepted = 0;
  for (const auto& l : labels) {
    if (!l.accepted) continue;
    sets.train.push_back(
        io::tokenize(l.record, tokenizer, config.train.seq_len, config.data.train_on_prompt));
    ++accepted;
  }
  spdlog::info("self-training: {} of {} pseudo-labels pass mean log-prob >= {} and join {} gold "
               "examples", accepted, labels.size(), options.threshold,
               sets.train.size() - static_cast<size_t>(accepted));
  return labels;
}

}  // namespace shardtune::launch
