#include "launch/cmd_generate.h"

#include <cstdio>

#include "base/checks.h"
#include "core/generate.h"
#include "launch/trainer.h"

namespace shardtune::launch {

void GenerateConfig::validate() const {
  base::require_count("[generate] from_eval", from_eval, 0);
  base::require_count("[generate] max_new_tokens", max_new_tokens, 1);
  base::require_non_negative("[generate] temperature", temperature);
  base::require_count("[generate] top_k", top_k, 0);
}

void print_generations(Trainer& trainer, bool print) {
  const auto& g = trainer.config().generate;
  const auto& tok = trainer.tokenizer();
  std::vector<std::string> texts = g.prompts, references(g.prompts.size());
  const auto& records = trainer.data().eval_records;
  for (int64_t i = 0; i < g.from_eval && i < static_cast<int64_t>(records.size()); ++i) {
    texts.push_back(records[static_cast<size_t>(i)].prompt);
    references.push_back(records[static_cast<size_t>(i)].response);
  }
  // Prompts share one left-padded batch that may not outgrow the model's positions: a prompt
  // longer than the room max_new_tokens leaves keeps its last tokens (the ones generation
  // continues), so one long prompt cannot leave every other without output.
  const int64_t max_positions = trainer.model().config().max_position_embeddings;
  const int64_t room = max_positions - g.max_new_tokens;
  require(room >= 2, "[generate] max_new_tokens=" + std::to_string(g.max_new_tokens) +
                         " leaves no room for a prompt within [model] max_position_embeddings=" +
                         std::to_string(max_positions));
  std::vector<std::vector<int64_t>> prompts;
  std::vector<size_t> kept(texts.size(), 0);  // tokens kept of a cut prompt (0 = whole)
  for (size_t i = 0; i < texts.size(); ++i) {
    auto ids = tok.encode(texts[i]);
    if (static_cast<int64_t>(ids.size()) + 1 > room) {
      ids.erase(ids.begin(), ids.end() - (room - 1));
      kept[i] = ids.size();
    }
    ids.insert(ids.begin(), tok.bos_id());
    prompts.push_back(ids);
  }
  core::GenerateOptions opt;
  opt.max_new_tokens = g.max_new_tokens;
  opt.temperature = g.temperature;
  opt.top_k = g.top_k;
  opt.eos_id = tok.eos_id();
  opt.vocab_limit = tok.vocab_size();
  opt.seed = trainer.config().train.seed;
  const auto outputs = core::generate(trainer.model(), prompts, tok.pad_id(), opt);
  if (!print) return;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string prompt = texts[i];
    while (!prompt.empty() && prompt.back() == '\n') prompt.pop_back();
    if (kept[i] > 0) {
      std::printf("(prompt cut to its last %zu tokens: max_position_embeddings %lld minus "
                  "max_new_tokens %lld)\n",
                  kept[i], static_cast<long long>(max_positions),
                  static_cast<long long>(g.max_new_tokens));
    }
    std::printf("prompt:    %s\ngenerated: %s\n", prompt.c_str(), tok.decode(outputs[i]).c_str());
    if (!references[i].empty()) std::printf("reference: %s\n", references[i].c_str());
    std::printf("\n");
  }
}

}  // namespace shardtune::launch
