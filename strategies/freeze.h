// Freeze tuning (LLaMA-Factory's `freeze`): only some transformer blocks train.
//
// Options ([strategy.freeze]):
//   trainable_layers = 2    N > 0: the last N blocks train; N < 0: the first |N|
//   trainable_modules = all comma list of block sub-modules: llama mlp | self_attn | all
//                           (gpt2: mlp | attn | all); "all" = every parameter of the block,
//                           norms included
//   extra_modules =         comma list of modules outside the blocks that also train:
//                           llama embed_tokens | lm_head | norm; gpt2 wte | wpe | ln_f
//                           (lm_head on a tied llama is embed_tokens: rejected, name that one)
// Everything else gets requires_grad=false.
#pragma once

#include <string>
#include <vector>

#include "core/strategy.h"

namespace shardtune::strategies {

class FreezeStrategy final : public core::Strategy {
 public:
  explicit FreezeStrategy(core::StrategyOptions options);
  std::string name() const override { return "freeze"; }
  void apply(core::CausalLMImpl& model) override;
  // Whether parameter `name` trains for a model of `family` with `num_layers` blocks.
  bool trains(const std::string& name, const std::string& family, int64_t num_layers) const;

 private:
  int64_t layers_;
  std::vector<std::string> modules_, extra_;
};

}  // namespace shardtune::strategies
