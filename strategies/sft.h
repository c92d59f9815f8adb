// Full-parameter supervised fine-tuning: every parameter trains. Which tokens carry the loss
// (responses only, or prompts too) is a data option ([data] train_on_prompt).
#pragma once

#include "core/strategy.h"

namespace shardtune::strategies {

class SftStrategy final : public core::Strategy {
 public:
  explicit SftStrategy(core::StrategyOptions options);
  std::string name() const override { return "sft"; }
  void apply(core::CausalLMImpl& model) override;
};

}  // namespace shardtune::strategies
