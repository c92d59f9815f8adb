// `shardtune export`: the trained model out of a run's checkpoint ([checkpoint] init_from, loaded
// with its strategy by the Trainer) in one of three forms ([export] format, or --format):
//   hdf5  the strategy merged into the base weights (Strategy::merge: LoRA folds scale * B A into
//         W; sft and freeze have nothing to fold; ptuning-v2 has no merged form and is refused),
//         every base parameter at its global shape under /model/ in <out>/step-N.h5, loadable by
//         any later run as [checkpoint] init_from with any strategy and layout.
//   hf    the same merged weights as a Hugging Face folder (io/hf_weights.h export_hf):
//         config.json (keeping the other keys of [model] from_hf's config.json), model.safetensors
//         (sharded above 5 GB, with the index) in [export] dtype, and the tokenizer files of
//         [data] tokenizer (or of the from_hf folder) copied.
//   peft  the strategy's own parameters as a PEFT adapter (io/peft_export.h): lora ->
//         adapter_model.safetensors + adapter_config.json (r, lora_alpha, target_modules,
//         use_rslora, base_model_name_or_path = [model] from_hf); ptuning-v2 -> PEFT prefix
//         tuning. Other strategies have no adapter and are refused.
// <out> is [export] out (--out), default <[train] out_dir>/export.
#pragma once

#include <string>

#include "base/fields.h"

namespace shardtune::parallel {
class RankGrid;
}

namespace shardtune::launch {

class Trainer;

// [export] (`shardtune export --format F --out DIR --dtype D` sets these).
struct ExportOptions : base::FieldList<ExportOptions> {
  std::string format = "hdf5";
  std::string out;
  std::string dtype = "fp32";

  // UserError naming the [export] field.
  void validate() const;
  // "float32", "bfloat16" or "float16" for dtype (fp32/bf16/fp16 or the torch names).
  std::string torch_dtype() const;

  template <typename Self, typename V>
  static void visit(Self& c, V& v) {
    v("format", c.format, "hdf5 | hf (Hugging Face folder) | peft (adapter; lora, ptuning-v2)");
    v("out", c.out, "output folder (default: <[train] out_dir>/export)");
    v("dtype", c.dtype, "fp32 | bf16 | fp16: tensor dtype of the hf and peft formats");
  }
};

// The export command: the form [export] format names. Collective over the grid (TP gathers);
// world rank 0 writes. Returns what was written (a file or a folder) on rank 0, "" elsewhere.
std::string run_export_command(Trainer& trainer, parallel::RankGrid& grid);

// The hdf5 form into `dir` ("" = <[train] out_dir>/export). Returns the file path on rank 0.
std::string export_merged(Trainer& trainer, parallel::RankGrid& grid, const std::string& dir = "");

}  // namespace shardtune::launch
