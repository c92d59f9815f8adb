#include "launch/cmd_generate.h"

#include <cstdio>

#include "core/generate.h"
#include "launch/trainer.h"

namespace shardtune::launch {

void print_generations(Trainer& trainer, bool print) {
  const auto& g = trainer.config().generate;
  const auto& tok = trainer.tokenizer();
  std::vector<std::string> texts = g.prompts, references(g.prompts.size());
  const auto& records = trainer.data().eval_records;
  for (int64_t i = 0; i < g.from_eval && i < static_cast<int64_t>(records.size()); ++i) {
    texts.push_back(records[static_cast<size_t>(i)].prompt);
    references.push_back(records[static_cast<size_t>(i)].response);
  }
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& t : texts) {
    auto ids = tok.encode(t);
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
    std::printf("prompt:    %s\ngenerated: %s\n", prompt.c_str(), tok.decode(outputs[i]).c_str());
    if (!references[i].empty()) std::printf("reference: %s\n", references[i].c_str());
    std::printf("\n");
  }
}

}  // namespace shardtune::launch
