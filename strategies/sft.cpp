#include "strategies/sft.h"

#include "core/model.h"
#include "parallel/errors.h"

namespace shardtune::strategies {

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

}  // namespace shardtune::strategies
