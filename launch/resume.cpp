#include "launch/resume.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/shard.h"
#include "parallel/errors.h"
#include "parallel/tp_ops.h"

namespace fs = std::filesystem;

namespace shardtune::launch {

namespace {

std::string layout_of(const Config& config, const parallel::RankGrid& grid) {
  return "tp=" + std::to_string(grid.dims().tp) + ",dp=" + std::to_string(grid.dims().dp) +
         ",zero=" + std::to_string(config.parallel.zero);
}

io::CheckpointInfo expected_info(const TrainingState& s) {
  io::CheckpointInfo info;
  info.shardtune_version = SHARDTUNE_VERSION;
  info.model_config = s.config.model.to_json();
  info.strategy = s.strategy.name();
  info.strategy_options = nlohmann::json(s.config.strategy_options).dump();
  info.tokenizer = s.tokenizer.identity();
  info.layout = layout_of(s.config, s.grid);
  info.tp = s.grid.dims().tp;
  info.dp = s.grid.dims().dp;
  info.zero = s.config.parallel.zero;
  info.world = s.grid.dims().world();
  info.sampler_seed = static_cast<int64_t>(s.config.train.seed);
  return info;
}

std::map<std::string, core::ShardSpec> spec_map(core::CausalLMImpl& model) {
  std::map<std::string, core::ShardSpec> out;
  for (auto& [name, spec] : core::parameter_specs(model)) out[name] = spec;
  return out;
}

bool all_trainable(core::CausalLMImpl& model) {
  for (const auto& p : model.parameters()) {
    if (!p.requires_grad()) return false;
  }
  return true;
}

}  // namespace

std::string base_model_reference(const Config& config, core::CausalLMImpl& model) {
  if (all_trainable(model)) return "";
  if (config.checkpoint.init_from.empty()) return "seed:" + std::to_string(config.train.seed);
  const std::string file = io::resolve_checkpoint(config.checkpoint.init_from);
  return fs::absolute(file).lexically_normal().string() + " digest:" + io::checkpoint_digest(file);
}

void require_compatible(const std::string& file, const io::CheckpointInfo& saved,
                        const io::CheckpointInfo& expected) {
  require(core::ModelConfig::from_json(saved.model_config) ==
              core::ModelConfig::from_json(expected.model_config),
          file + ": model config differs from [model]: saved " + saved.model_config +
              ", configured " + expected.model_config);
  require(saved.strategy == expected.strategy,
          file + ": saved by strategy '" + saved.strategy + "', but this run uses '" +
              expected.strategy + "' ([strategy] name)");
  if (saved.format_version >= 2) {
    require(saved.strategy_options == expected.strategy_options,
            file + ": strategy options differ: saved " + saved.strategy_options +
                ", configured " + expected.strategy_options);
  }
  require(saved.tokenizer == expected.tokenizer,
          file + ": tokenizer differs: saved '" + saved.tokenizer + "', configured '" +
              expected.tokenizer + "'");
}

std::string save_training_checkpoint(TrainingState& s) {
  const auto& grid = s.grid;
  const int rank = grid.rank(), world = grid.dims().world(), dp = grid.dims().dp;
  const int dp_rank = grid.coord().dp_rank;
  // Optimizer state at this rank's TP-local shape (ZeRO-1 shards gathered over DP).
  std::vector<torch::Tensor> exp_avg, exp_avg_sq;
  if (s.zero) {
    s.zero->gather_state(exp_avg, exp_avg_sq);
  } else {
    exp_avg = s.adamw->exp_avg();
    exp_avg_sq = s.adamw->exp_avg_sq();
  }
  const auto specs = spec_map(s.model);
  std::vector<io::ShardedTensor> tensors;
  // Every piece is written by one rank; DP (and TP) replicas take turns by tensor index so that
  // every rank writes.
  auto add = [&](const std::string& path, const torch::Tensor& local,
                 const core::ShardSpec& spec) {
    const int k = static_cast<int>(tensors.size());
    const bool write = spec.sharded() ? dp_rank == k % dp : rank == k % world;
    tensors.push_back({path, local.detach(), spec, write});
  };
  for (size_t i = 0; i < s.trainable.size(); ++i) {
    const auto& name = s.trainable[i].name;
    add("/model/" + name, s.trainable[i].param, specs.at(name));
  }
  for (size_t i = 0; i < s.trainable.size(); ++i) {
    const auto& name = s.trainable[i].name;
    add("/optimizer/" + name + "/exp_avg", exp_avg[i], specs.at(name));
    add("/optimizer/" + name + "/exp_avg_sq", exp_avg_sq[i], specs.at(name));
  }
  // RNG streams, one row per rank.
  for (const auto& [stream, state] : parallel::rng_tracker().get_states()) {
    const int64_t n = state.numel();
    tensors.push_back({"/rng/" + stream, state.reshape({1, n}).contiguous(),
                       core::split_spec({world, n}, 0, rank, world), true});
  }
  auto info = expected_info(s);
  info.step = s.steps_done;
  info.consumed_samples = s.sampler.consumed_samples();
  info.optimizer_step = s.zero ? s.zero->step_count() : s.adamw->step_count();
  info.base_model = base_model_reference(s.config, s.model);
  const std::string path = io::save_sharded_checkpoint(s.config.checkpoint_dir(), info, tensors,
                                                       grid.world(), s.config.checkpoint.keep_last);
  if (rank == 0) spdlog::info("checkpoint saved: {}", path);
  return path;
}

std::string resume_file(const Config& config) {
  const std::string& r = config.checkpoint.resume;
  if (r.empty()) return "";
  if (r == "auto") {
    const auto dir = config.checkpoint_dir();
    if (!fs::exists(fs::path(dir) / "latest")) return "";
    return io::resolve_checkpoint(dir);
  }
  return io::resolve_checkpoint(r);
}

void load_training_checkpoint(const std::string& file, TrainingState& s) {
  const auto saved = io::read_checkpoint_info(file);
  const auto expected = expected_info(s);
  require_compatible(file, saved, expected);
  const std::string base = base_model_reference(s.config, s.model);
  require(saved.base_model == base,
          file + ": base model differs: saved '" + saved.base_model + "', this run's '" + base +
              "' ([checkpoint] init_from / [train] seed)");
  const auto specs = spec_map(s.model);
  std::vector<io::ShardedTensor> tensors;
  std::vector<torch::Tensor> exp_avg, exp_avg_sq;
  for (const auto& p : s.trainable) {
    tensors.push_back({"/model/" + p.name, p.param, specs.at(p.name), false});
  }
  for (size_t i = 0; i < s.trainable.size(); ++i) {
    const auto& p = s.trainable[i];
    if (s.zero) {
      exp_avg.push_back(torch::zeros_like(p.param).detach());
      exp_avg_sq.push_back(torch::zeros_like(p.param).detach());
    } else {
      exp_avg.push_back(s.adamw->exp_avg()[i]);
      exp_avg_sq.push_back(s.adamw->exp_avg_sq()[i]);
    }
    tensors.push_back({"/optimizer/" + p.name + "/exp_avg", exp_avg.back(), specs.at(p.name), false});
    tensors.push_back(
        {"/optimizer/" + p.name + "/exp_avg_sq", exp_avg_sq.back(), specs.at(p.name), false});
  }
  // RNG streams: exact only on the layout that saved them (the rows are per rank).
  const int world = s.grid.dims().world(), rank = s.grid.rank();
  const bool same_layout = saved.world == world && saved.tp == s.grid.dims().tp;
  std::map<std::string, torch::Tensor> rng;
  if (same_layout && saved.format_version >= 2) {
    for (const auto& [stream, state] : parallel::rng_tracker().get_states()) {
      rng[stream] = torch::empty({1, state.numel()}, torch::kByte);
      tensors.push_back({"/rng/" + stream, rng[stream],
                         core::split_spec({world, state.numel()}, 0, rank, world), false});
    }
  }
  io::load_sharded_tensors(file, tensors);
  if (s.zero) s.zero->set_state(exp_avg, exp_avg_sq);
  if (s.zero) {
    s.zero->set_step_count(saved.optimizer_step);
  } else {
    s.adamw->set_step_count(saved.optimizer_step);
  }
  s.sampler.set_consumed_samples(saved.consumed_samples);
  s.steps_done = saved.step;
  if (!rng.empty()) {
    std::map<std::string, torch::Tensor> states;
    for (auto& [stream, t] : rng) states[stream] = t.reshape({-1}).contiguous();
    parallel::rng_tracker().set_states(states);
  }
  if (rank == 0) {
    spdlog::info("resumed from {} at step {} (saved at {}, now {}{})", file, saved.step,
                 saved.layout, expected.layout,
                 rng.empty() ? "; RNG streams re-seeded: another layout" : "");
  }
}

void load_base_weights(const std::string& checkpoint, core::CausalLMImpl& model, uint64_t seed) {
  const std::string file = io::resolve_checkpoint(checkpoint);
  const auto info = io::read_checkpoint_info(file);
  require(core::ModelConfig::from_json(info.model_config) == model.config(),
          file + ": model config differs from [model]: saved " + info.model_config +
              ", configured " + model.config().to_json());
  std::vector<io::ShardedTensor> tensors;
  if (!info.base_model.empty()) {
    const std::string& base = info.base_model;
    if (base.rfind("seed:", 0) == 0) {
      require(base.substr(5) == std::to_string(seed),
              file + ": its base model is the initialisation of seed " + base.substr(5) +
                  "; set [train] seed=" + base.substr(5));
      return;
    }
    const auto cut = base.rfind(" digest:");
    require(cut != std::string::npos, file + ": malformed base_model attribute '" + base + "'");
    const std::string base_file = base.substr(0, cut);
    require(fs::is_regular_file(base_file),
            file + ": its base model " + base_file + " is missing");
    require(io::checkpoint_digest(base_file) == base.substr(cut + 8),
            file + ": its base model " + base_file + " has changed since (digest differs)");
    load_base_weights(base_file, model, seed);
    return;
  }
  auto params = model.named_parameters();
  for (auto& [name, spec] : core::parameter_specs(model)) {
    tensors.push_back({"/model/" + name, params[name], spec, false});
  }
  io::load_sharded_tensors(file, tensors);
}

void load_strategy_weights(const std::string& checkpoint, core::CausalLMImpl& model) {
  const std::string file = io::resolve_checkpoint(checkpoint);
  const auto info = io::read_checkpoint_info(file);
  if (info.base_model.empty()) return;
  std::vector<io::ShardedTensor> tensors;
  auto params = model.named_parameters();
  for (auto& [name, spec] : core::parameter_specs(model)) {
    if (io::checkpoint_has_tensor(file, "/model/" + name)) {
      tensors.push_back({"/model/" + name, params[name], spec, false});
    }
  }
  io::load_sharded_tensors(file, tensors);
}

}  // namespace shardtune::launch
