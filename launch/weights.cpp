#include "launch/weights.h"

#include <filesystem>
#include <functional>

#include "base/errors.h"
#include "core/shard.h"
#include "io/checkpoint.h"

namespace fs = std::filesystem;

namespace shardtune::launch {

namespace {

// Reads /model/<name> for every parameter of `model` that `wanted` selects.
void load_parameters(const std::string& file, core::CausalLMImpl& model,
                     const std::function<bool(const std::string&)>& wanted) {
  auto params = model.named_parameters();
  std::vector<io::ShardedTensor> tensors;
  for (const auto& [name, spec] : core::parameter_specs(model)) {
    if (wanted(name)) tensors.push_back({io::model_tensor_path(name), params[name], spec, false});
  }
  io::load_sharded_tensors(file, tensors);
}

}  // namespace

void load_base_weights(const std::string& checkpoint, core::CausalLMImpl& model, uint64_t seed) {
  const std::string file = io::resolve_checkpoint(checkpoint);
  const auto info = io::read_checkpoint_info(file);
  require(core::ModelConfig::from_json(info.model_config) == model.config(),
          file + ": model config differs from [model]: saved " + info.model_config +
              ", configured " + model.config().to_json());
  const auto base = io::parse_base_reference(info.base_model, file);
  switch (base.kind) {
    case io::BaseReference::Kind::kNone:
      load_parameters(file, model, [](const std::string&) { return true; });
      return;
    case io::BaseReference::Kind::kSeed:
      require(base.seed == std::to_string(seed),
              file + ": its base model is the initialisation of seed " + base.seed +
                  "; set [train] seed=" + base.seed);
      return;
    case io::BaseReference::Kind::kFile:
      require(fs::is_regular_file(base.path),
              file + ": its base model " + base.path + " is missing");
      require(io::checkpoint_digest(base.path) == base.digest,
              file + ": its base model " + base.path + " has changed since (digest differs)");
      load_base_weights(base.path, model, seed);
      return;
  }
}

void load_added_parameters(const core::Strategy& strategy, core::CausalLMImpl& model) {
  const std::string from = strategy.added_parameters_from();
  if (from.empty()) return;
  load_parameters(io::resolve_checkpoint(from), model,
                  [&](const std::string& name) { return strategy.is_added_parameter(name); });
}

void load_strategy_weights(const std::string& checkpoint, core::CausalLMImpl& model) {
  const std::string file = io::resolve_checkpoint(checkpoint);
  if (io::read_checkpoint_info(file).base_model.empty()) return;
  load_parameters(file, model, [&](const std::string& name) {
    return io::checkpoint_has_tensor(file, io::model_tensor_path(name));
  });
}

}  // namespace shardtune::launch
