// Hugging Face model folders in and out of a built core::CausalLMImpl.
//
// Import (load_hf_weights): every parameter of core::parameter_specs(model) is looked up in the
// folder (io/safetensors.h: one file or an index + shards) and each TP rank reads only its own
// hyperslab of it from the memory-mapped file, converted to the parameter's dtype:
//   - names are Hugging Face's (core/model.h); GPT-2 files may carry them without "transformer."
//     (the hub's gpt2 files do) or with it (save_pretrained), not both;
//   - GPT-2's Conv1D weights (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) are stored [in, out]
//     and transposed into ShardTune's [out, in]; the fused c_attn is read as its q | k | v segments
//     so that each rank gets its heads of all three (ShardSpec parts = 3);
//   - vocabulary rows past the real vocabulary on the last TP ranks (ShardSpec padding) are zero;
//   - buffers some checkpoints carry are ignored: GPT-2's h.N.attn.bias / h.N.attn.masked_bias and
//     Llama's self_attn.rotary_emb.inv_freq;
//   - a tied model (tie_word_embeddings, every GPT-2) needs no lm_head.weight; when the file has
//     one anyway it must equal the embedding bit for bit (else the file is ambiguous).
// Every problem is one UserError naming the folder and the tensor: a missing tensor, an unexpected
// tensor, a shape that is not the config's, a non-floating dtype.
// Call after core::build_model (any seed) and before Strategy::apply; no communication happens.
//
// Export (export_hf): gathers every HF parameter at its global shape (collective over the model's
// TP group, issued in the same order on every rank) and the writer rank writes a folder that
// transformers and load_hf_weights read: config.json (io/hf_config.h), model.safetensors or shards
// above max_shard_bytes with model.safetensors.index.json, tokenizer files copied. Only the HF
// parameter set is written: a strategy must be merged into the base weights first
// (Strategy::merge); adapter and prefix parameters are left out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model.h"
#include "io/safetensors.h"

namespace shardtune::io {

struct HfLoadReport {
  int64_t tensors = 0;               // parameters loaded
  uint64_t bytes_read = 0;           // file bytes this rank read (its slices)
  std::vector<std::string> ignored;  // buffers skipped (attn.bias, inv_freq, a tied lm_head)
};

// Loads `dir` (a folder with model.safetensors or model.safetensors.index.json) into `model`.
HfLoadReport load_hf_weights(core::CausalLMImpl& model, const std::string& dir);
HfLoadReport load_hf_weights(core::CausalLMImpl& model, const safetensors::Folder& folder);

// Builds the model `dir`/config.json describes (io/hf_config.h) on this TP group and loads its
// weights: the whole `[model] from_hf = DIR` path. Every parameter is overwritten, so the seed
// build_model initialises with does not matter.
std::shared_ptr<core::CausalLMImpl> load_hf_model(const std::string& dir, parallel::TpGroup tp = {},
                                                  HfLoadReport* report = nullptr);

struct HfExportOptions {
  std::string dtype = "float32";             // written dtype: float32, bfloat16 or float16
  uint64_t max_shard_bytes = 5'000'000'000;  // huggingface_hub's default
  std::string model_type;                    // "" = from the config (io::hf_model_type_for)
  // The HF folder the model came from (or ""): its config.json's other keys (token ids, generation
  // settings) are kept and, unless tokenizer_dir is set, its tokenizer files are copied.
  std::string source_dir;
  std::string tokenizer_dir;  // folder to copy tokenizer files from
};

// A digest of the model a folder holds: FNV-1a (base/hash.h fnv1a64x4) over config.json and the
// whole content of every weight file (one file or the index and its shards), as hex. Checkpoints
// of a [model] from_hf run record it ("hf:DIR digest:HEX", io/checkpoint/schema.h) so that a
// resumed or evaluated run refuses a folder whose weights changed since. Reads every byte once per
// process (remembered per path and file sizes/times for later calls). UserError naming the folder.
std::string hf_folder_digest(const std::string& dir);

// Tokenizer and generation files copied by export_hf when present.
const std::vector<std::string>& hf_tokenizer_files();

// Collective over model.tp(): every rank of the writer's TP group must call it; ranks of other TP
// groups may call it too (they gather and discard). `writer`: this rank writes `out_dir` (exactly
// one rank should). Returns the written file names on the writer, {} elsewhere.
std::vector<std::string> export_hf(core::CausalLMImpl& model, const std::string& out_dir,
                                   bool writer, const HfExportOptions& options = {});

// safetensors dtype for a torch dtype name ("float32", "bfloat16", "float16") and back.
safetensors::Dtype dtype_from_torch_name(const std::string& name);
torch::ScalarType scalar_type_of(safetensors::Dtype dtype);
safetensors::Dtype dtype_of(torch::ScalarType type);

}  // namespace shardtune::io
