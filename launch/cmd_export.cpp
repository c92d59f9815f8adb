#include "launch/cmd_export.h"

#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/shard.h"
#include "io/checkpoint.h"

namespace shardtune::launch {

std::string export_merged(Trainer& trainer, parallel::RankGrid& grid) {
  auto& model = trainer.model();
  auto& strategy = trainer.strategy();
  strategy.merge(model);  // same on every rank (UserError on every rank for ptuning-v2)
  const parallel::TpGroup tp{grid.tp_ptr()};
  auto params = model.named_parameters();
  std::vector<io::CheckpointTensor> tensors;
  for (const auto& [name, spec] : core::parameter_specs(model)) {
    if (strategy.is_added_parameter(name)) continue;
    tensors.push_back(
        {io::model_tensor_path(name), core::gather_full(params[name].detach(), spec, tp)});
  }
  const auto& config = trainer.config();
  std::string path;
  if (grid.rank() == 0) {
    io::CheckpointInfo info;
    info.shardtune_version = SHARDTUNE_VERSION;
    info.model_config = config.model.to_json();
    info.strategy = "sft";  // a plain model: every parameter, no adapters
    info.strategy_options = "{}";
    info.tokenizer = trainer.tokenizer().identity();
    info.layout = io::layout_name(1, 1, 0);
    // The step of the run that trained it (the Trainer here only loaded that checkpoint).
    const auto& from = config.checkpoint.init_from;
    info.step = from.empty() ? trainer.steps_done()
                             : io::read_checkpoint_info(io::resolve_checkpoint(from)).step;
    const auto dir = (std::filesystem::path(config.train.out_dir) / "export").string();
    path = io::save_checkpoint(dir, info, tensors, 0);
    spdlog::info("exported the {}-merged model ({} tensors) to {}", strategy.name(),
                 tensors.size(), path);
  }
  grid.world().barrier();
  return path;
}

}  // namespace shardtune::launch
