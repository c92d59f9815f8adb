// Autoregressive sampling from a CausalLM: greedy (temperature 0), temperature, top-k.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace shardtune::core {

class CausalLMImpl;

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // 0 = whole vocabulary
  int64_t eos_id = -1;       // stop when produced (not returned)
  int64_t vocab_limit = 0;   // sample only ids < vocab_limit (the tokenizer's); 0 = all
  uint64_t seed = 0;
};

// prompts: token ids (BOS included by the caller). Returns the new tokens of each prompt. The
// prompts are left-padded into one batch; the model is run without dropout.
std::vector<std::vector<int64_t>> generate(CausalLMImpl& model,
                                           const std::vector<std::vector<int64_t>>& prompts,
                                           int64_t pad_id, const GenerateOptions& options);

}  // namespace shardtune::core
