// An out-of-tree program that uses ShardTune as a library: it adds its own fine-tuning strategy,
// "norm-tuning", to the registry and then runs the ordinary `shardtune` command line, so every
// command (train, eval, generate, ckpt, ...), option, launcher (mpirun, srun) and checkpoint works
// with the new strategy exactly as with a built-in one:
//
//   custom_strategy train --config run.ini --strategy.name=norm-tuning
//
// Norm tuning trains only the normalisation weights (a few hundred parameters on the example's
// model; the idea of LayerNorm tuning), optionally the token embeddings too; every other
// parameter is frozen, so the optimizer holds state for the normalisation weights alone.
#include <memory>
#include <string>
#include <utility>

#include "core/model.h"
#include "core/strategy.h"
#include "launch/cli.h"
#include "strategies/registry.h"

namespace {

using shardtune::core::CausalLMImpl;
using shardtune::core::StrategyOptions;

class NormTuning final : public shardtune::core::Strategy {
 public:
  // [strategy.norm-tuning] include_embeddings = false
  explicit NormTuning(StrategyOptions options) {
    include_embeddings_ =
        shardtune::core::take_bool(options, "norm-tuning", "include_embeddings", false);
    shardtune::core::reject_unknown_options(options, "norm-tuning");
  }

  std::string name() const override { return "norm-tuning"; }

  // Freezes everything but the normalisation weights (llama: *_layernorm.weight and
  // model.norm.weight; gpt2: ln_1, ln_2, ln_f); the trainer builds its optimizer from what is
  // left trainable (Strategy::trainable_parameters).
  void apply(CausalLMImpl& model) override {
    for (auto& p : model.named_parameters()) {
      p.value().set_requires_grad(trains(p.key()));
    }
  }

 private:
  bool trains(const std::string& name) const {
    const bool norm = name.find("norm") != std::string::npos || name.find(".ln_") != std::string::npos;
    const bool embedding = name.find("embed_tokens") != std::string::npos ||
                           name.find("wte") != std::string::npos;
    return norm || (include_embeddings_ && embedding);
  }

  bool include_embeddings_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  shardtune::strategies::register_strategy("norm-tuning", [](StrategyOptions options) {
    return std::make_unique<NormTuning>(std::move(options));
  });
  return shardtune::launch::run_cli(argc, argv);
}
