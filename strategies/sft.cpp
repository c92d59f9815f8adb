#include "strategies/sft.h"

#include "core/model.h"

namespace shardtune::strategies {

SftStrategy::SftStrategy(core::StrategyOptions options) {
  core::reject_unknown_options(options, "sft");
}

void SftStrategy::apply(core::CausalLMImpl& model) {
  for (auto& p : model.parameters()) p.set_requires_grad(true);
}

}  // namespace shardtune::strategies
