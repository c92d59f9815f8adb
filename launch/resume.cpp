#include "launch/resume.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "core/shard.h"
#include "launch/weights.h"
#include "parallel/tp_ops.h"

namespace fs = std::filesystem;

namespace shardtune::launch {

namespace {

io::CheckpointInfo expected_info(const TrainingState& s) {
  const auto& dims = s.grid.dims();
  io::CheckpointInfo info;
  info.shardtune_version = SHARDTUNE_VERSION;
  info.model_config = s.config.model.to_json();
  info.strategy = s.strategy.name();
  info.strategy_options = nlohmann::json(s.config.strategy_options).dump();
  info.tokenizer = s.tokenizer.identity();
  info.layout = io::layout_name(dims.tp, dims.dp, s.config.parallel.zero);
  info.tp = dims.tp;
  info.dp = dims.dp;
  info.zero = s.config.parallel.zero;
  info.world = dims.world();
  info.sampler_seed = static_cast<int64_t>(s.config.train.seed);
  return info;
}

io::WriterLayout writer_layout(const parallel::RankGrid& grid) {
  return {grid.rank(), grid.dims().world(), grid.coord().dp_rank, grid.dims().dp};
}

// The trainable parameters with their specs, in the optimizer's order.
io::TrainingTensors trainable_tensors(TrainingState& s) {
  std::map<std::string, core::ShardSpec> specs;
  for (auto& [name, spec] : core::parameter_specs(s.model)) specs[name] = spec;
  io::TrainingTensors t;
  for (const auto& p : s.step.trainable()) {
    t.names.push_back(p.name);
    t.specs.push_back(specs.at(p.name));
    t.params.push_back(p.param.detach());
  }
  return t;
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
  if (config.checkpoint.init_from.empty()) {
    return config.model_source.from_hf.empty() ? io::seed_base(config.train.seed)
                                               : hf_base_reference(config.model_source.from_hf);
  }
  const std::string file = io::resolve_checkpoint(config.checkpoint.init_from);
  return io::file_base(fs::absolute(file).lexically_normal().string(),
                       io::checkpoint_digest(file));
}

std::string save_training_checkpoint(TrainingState& s) {
  // Optimizer state at this rank's TP-local shape (ZeRO-1 gathers its shards over DP).
  const core::OptimizerState state = s.step.optimizer().state();
  io::TrainingTensors t = trainable_tensors(s);
  t.exp_avg = state.exp_avg;
  t.exp_avg_sq = state.exp_avg_sq;
  for (const auto& [stream, rng] : parallel::rng_tracker().get_states()) {
    t.rng[stream] = rng.reshape({1, rng.numel()}).contiguous();
  }
  auto info = expected_info(s);
  info.step = s.steps_done;
  info.consumed_samples = s.sampler.consumed_samples();
  info.optimizer_step = state.step;
  info.base_model = base_model_reference(s.config, s.model);
  io::SaveOptions options;
  options.keep_last = s.config.checkpoint.keep_last;
  options.collective_transfer = s.config.checkpoint.transfer == "collective";
  options.before_close = s.inside_write;
  const std::string path =
      io::save_sharded_checkpoint(s.config.checkpoint_dir(), info,
                                  io::training_checkpoint_tensors(t, writer_layout(s.grid)),
                                  s.grid.world(), options);
  if (s.grid.rank() == 0) spdlog::info("checkpoint saved: {}", path);
  return path;
}

std::string resume_file(const Config& config) {
  const std::string& r = config.checkpoint.resume;
  if (r.empty()) return "";
  if (r == "auto") {
    const auto dir = config.checkpoint_dir();
    if (!fs::exists(fs::path(dir) / io::kLatestPointer)) return "";
    return io::resolve_checkpoint(dir);
  }
  return io::resolve_checkpoint(r);
}

void load_training_checkpoint(const std::string& file, TrainingState& s) {
  const auto saved = io::read_checkpoint_info(file);
  const auto expected = expected_info(s);
  io::require_compatible(file, saved, expected);
  const std::string base = base_model_reference(s.config, s.model);
  require(saved.base_model == base,
          file + ": base model differs: saved '" + saved.base_model + "', this run's '" + base +
              "' ([checkpoint] init_from / [model] from_hf / [train] seed)");
  io::TrainingTensors t = trainable_tensors(s);
  core::OptimizerState state;
  state.step = saved.optimizer_step;
  for (const auto& p : t.params) {
    state.exp_avg.push_back(torch::zeros_like(p));
    state.exp_avg_sq.push_back(torch::zeros_like(p));
  }
  t.exp_avg = state.exp_avg;
  t.exp_avg_sq = state.exp_avg_sq;
  // RNG streams: exact only on the layout that saved them (the rows are per rank).
  const auto& dims = s.grid.dims();
  if (saved.world == dims.world() && saved.tp == dims.tp && saved.format_version >= 2) {
    for (const auto& [stream, rng] : parallel::rng_tracker().get_states()) {
      t.rng[stream] = torch::empty({1, rng.numel()}, torch::kByte);
    }
  }
  auto tensors = io::training_checkpoint_tensors(t, writer_layout(s.grid));
  io::load_sharded_tensors(file, tensors);
  s.step.optimizer().load_state(state);
  s.sampler.set_consumed_samples(saved.consumed_samples);
  s.steps_done = saved.step;
  if (!t.rng.empty()) {
    std::map<std::string, torch::Tensor> states;
    for (auto& [stream, row] : t.rng) states[stream] = row.reshape({-1}).contiguous();
    parallel::rng_tracker().set_states(states);
  }
  if (s.grid.rank() == 0) {
    spdlog::info("resumed from {} at step {} (saved at {}, now {}{})", file, saved.step,
                 saved.layout, expected.layout,
                 t.rng.empty() ? "; RNG streams re-seeded: another layout" : "");
  }
}

}  // namespace shardtune::launch
