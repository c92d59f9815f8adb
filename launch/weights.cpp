#include "launch/weights.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "core/shard.h"
#include "io/checkpoint.h"
#include "io/hf_config.h"
#include "io/hf_weights.h"
#include "io/peft_import.h"
#include "strategies/lora.h"

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

std::string absolute(const std::string& path) {
  return fs::absolute(path).lexically_normal().string();
}

}  // namespace

core::ModelConfig model_config_from_hf(const std::string& dir, const core::ModelConfig& configured,
                                       const std::set<std::string>& explicit_keys) {
  core::ModelConfig model = io::read_hf_config(dir).config;
  model.dropout = configured.dropout;
  const auto mine = nlohmann::json::parse(configured.to_json());
  const auto theirs = nlohmann::json::parse(model.to_json());
  for (const auto& key : explicit_keys) {
    if (key == "dropout" || !theirs.contains(key) || !mine.contains(key)) continue;
    require(mine.at(key) == theirs.at(key),
            "[model] " + key + "=" + mine.at(key).dump() + " conflicts with " + dir +
                "/config.json, which gives " + theirs.at(key).dump() +
                " ([model] from_hf sets the architecture; leave " + key + " out)");
  }
  return model;
}

std::string hf_base_reference(const std::string& dir) {
  return io::hf_base(absolute(dir), io::hf_folder_digest(dir));
}

void load_hf_base(const std::string& dir, core::CausalLMImpl& model) {
  const auto report = io::load_hf_weights(model, dir);
  spdlog::info("loaded {} tensors from {} ({} bytes read by this rank, {} buffers ignored)",
               report.tensors, dir, report.bytes_read, report.ignored.size());
}

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
    case io::BaseReference::Kind::kHf:
      require(fs::is_directory(base.path),
              file + ": its base model, the Hugging Face folder " + base.path + ", is missing");
      require(io::hf_folder_digest(base.path) == base.digest,
              file + ": its base model " + base.path + " has changed since (digest differs)");
      load_hf_base(base.path, model);
      return;
  }
}

void load_added_parameters(const core::Strategy& strategy, core::CausalLMImpl& model) {
  const std::string from = strategy.added_parameters_from();
  if (from.empty()) return;
  if (io::is_peft_adapter(from)) {
    const auto config = io::read_peft_config(from);
    if (const auto* lora = dynamic_cast<const strategies::LoraStrategy*>(&strategy)) {
      io::load_peft_lora(model, from, lora->alpha(), lora->rslora());
    } else if (strategy.name() == "ptuning-v2") {
      io::load_peft_prefix(model, from);
    } else {
      throw UserError(from + ": a PEFT " + config.peft_type + " adapter, but [strategy] " +
                      strategy.name() + " has no adapters to load it into");
    }
    return;
  }
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
