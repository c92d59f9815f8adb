#include "launch/cmd_export.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "base/errors.h"
#include "core/shard.h"
#include "io/checkpoint.h"
#include "io/hf_weights.h"
#include "io/peft_export.h"
#include "io/tokenizer.h"
#include "launch/trainer.h"
#include "parallel/rank_grid.h"
#include "strategies/lora.h"

namespace shardtune::launch {

namespace {

std::string output_dir(const Trainer& trainer, const std::string& dir) {
  if (!dir.empty()) return dir;
  return (std::filesystem::path(trainer.config().train.out_dir) / "export").string();
}

std::string export_hf_folder(Trainer& trainer, parallel::RankGrid& grid, const std::string& out) {
  const auto& config = trainer.config();
  auto& model = trainer.model();
  trainer.strategy().merge(model);  // same on every rank (UserError on every rank for ptuning-v2)
  io::HfExportOptions options;
  options.dtype = config.export_options.torch_dtype();
  options.source_dir = config.model_source.from_hf;
  options.tokenizer_dir = io::tokenizer_folder(config.data.tokenizer);
  // Every rank gathers (the TP collectives must be issued by all); world rank 0 writes.
  const auto files = io::export_hf(model, out, grid.rank() == 0, options);
  if (grid.rank() == 0) {
    spdlog::info("exported the {}-merged model as a Hugging Face folder ({} files, {}) to {}",
                 trainer.strategy().name(), files.size(), options.dtype, out);
  }
  grid.world().barrier();
  return grid.rank() == 0 ? out : "";
}

std::string export_peft(Trainer& trainer, parallel::RankGrid& grid, const std::string& out) {
  const auto& config = trainer.config();
  auto& model = trainer.model();
  const auto& strategy = trainer.strategy();
  const std::string dtype = config.export_options.torch_dtype();
  const bool writer = grid.rank() == 0;
  const std::string& base = config.model_source.from_hf;
  if (const auto* lora = dynamic_cast<const strategies::LoraStrategy*>(&strategy)) {
    io::PeftLoraSettings settings;
    settings.modules = lora->adapted();
    settings.r = lora->rank();
    settings.alpha = lora->alpha();
    settings.rslora = lora->rslora();
    settings.dropout = lora->dropout();
    settings.base_model = base;
    io::export_peft_lora(model, settings, out, writer, dtype);
  } else if (strategy.name() == "ptuning-v2") {
    io::export_peft_prefix(model, base, out, writer, dtype);
  } else {
    throw UserError("--format peft: [strategy] " + strategy.name() +
                    " has no adapter (lora and ptuning-v2 export as PEFT; use --format hf)");
  }
  if (writer) spdlog::info("exported the {} adapter in PEFT's layout to {}", strategy.name(), out);
  grid.world().barrier();
  return writer ? out : "";
}

}  // namespace

void ExportOptions::validate() const {
  require(format == "hdf5" || format == "hf" || format == "peft",
          "[export] format='" + format + "' is unknown (known: hdf5, hf, peft)");
  torch_dtype();
}

std::string ExportOptions::torch_dtype() const {
  if (dtype == "fp32" || dtype == "float32") return "float32";
  if (dtype == "bf16" || dtype == "bfloat16") return "bfloat16";
  if (dtype == "fp16" || dtype == "float16") return "float16";
  throw UserError("[export] dtype='" + dtype + "' is unknown (known: fp32, bf16, fp16)");
}

std::string run_export_command(Trainer& trainer, parallel::RankGrid& grid) {
  const auto& e = trainer.config().export_options;
  const std::string out = output_dir(trainer, e.out);
  if (e.format == "hf") return export_hf_folder(trainer, grid, out);
  if (e.format == "peft") return export_peft(trainer, grid, out);
  return export_merged(trainer, grid, out);
}

std::string export_merged(Trainer& trainer, parallel::RankGrid& grid, const std::string& dir) {
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
    path = io::save_checkpoint(output_dir(trainer, dir), info, tensors, 0);
    spdlog::info("exported the {}-merged model ({} tensors) to {}", strategy.name(),
                 tensors.size(), path);
  }
  grid.world().barrier();
  return path;
}

}  // namespace shardtune::launch
