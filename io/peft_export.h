// Adapters in Hugging Face PEFT's layout, so that `PeftModel.from_pretrained(base, DIR)` applies
// them to the base model elsewhere. Sources (huggingface/peft): utils/save_and_load.py
// get_peft_model_state_dict (keys without the adapter name), tuners/lora/layer.py (lora_A is
// [r, in], lora_B [out, r], scaling lora_alpha / r or lora_alpha / sqrt(r) with use_rslora, Conv1D
// targets with fan_in_fan_out), tuners/prefix_tuning/model.py and peft_model.py get_prompt (the
// prefix as one [num_virtual_tokens, num_layers * 2 * token_dim] embedding, viewed as
// [tokens, layers * 2, heads, head_dim] with layer l's key at 2l and value at 2l + 1),
// utils/other.py _prepare_prompt_learning_config (grouped-query models: token_dim = head_dim *
// num_key_value_heads, num_attention_heads = num_key_value_heads). Details in docs/hf.md.
//
// LoRA: adapter_model.safetensors holds, for every adapted Linear <m> (ShardTune parameters
// <m>.lora.A [r, in] and <m>.lora.B [out, r], core/model.h names), the tensors
// base_model.model.<m>.lora_A.weight and base_model.model.<m>.lora_B.weight; adapter_config.json
// says peft_type LORA, task_type CAUSAL_LM, r, lora_alpha, use_rslora, lora_dropout,
// target_modules (leaf names such as ["q_proj", "v_proj"] when they select exactly the adapted
// modules, else their full names), fan_in_fan_out (true for GPT-2's Conv1D), bias "none",
// base_model_name_or_path. PEFT's scale then equals ShardTune's (alpha / r, rsLoRA alpha /
// sqrt(r)).
//
// P-tuning v2: the effective per-layer prefix (after the reparameterisation MLP when there is one,
// without dropout) read through core::PrefixProvider, exported as PEFT PREFIX_TUNING with
// prefix_projection = false: adapter_model.safetensors {"prompt_embeddings": [P, L * 2 * kv * d]}.
// PEFT places the prefix in the KV cache, so the real tokens sit at positions P, P + 1, ...
// whereas ShardTune's start at 0 (prefix keys carry no rotary embedding in either). For the llama
// family the export rotates each prefix key by position P, which gives exactly ShardTune's scores
// (RoPE is a rotation: <R(P + i) q, R(P) k> = <R(i) q, k>). GPT-2's learned absolute positions
// have no such fix, so a GPT-2 prefix export is refused with a UserError.
//
// Both are collective over the model's TP group (gathers), like io::export_hf; `writer` writes.
#pragma once

#include <string>
#include <vector>

#include "core/model.h"

namespace shardtune::io {

struct PeftLoraSettings {
  std::vector<std::string> modules;  // adapted Linear names (LoraStrategy::adapted())
  int64_t r = 8;
  double alpha = 16.0;
  bool rslora = false;
  double dropout = 0.0;
  std::string base_model;  // base_model_name_or_path (the HF folder or hub id)
};

// Writes DIR/adapter_model.safetensors and DIR/adapter_config.json. Returns the file names on the
// writer. UserError when a module has no <m>.lora.A / <m>.lora.B of rank r.
std::vector<std::string> export_peft_lora(core::CausalLMImpl& model, const PeftLoraSettings& lora,
                                          const std::string& out_dir, bool writer,
                                          const std::string& dtype = "float32");

// Writes the model's prefix (model.prefix_provider(), which must be set) as PEFT prefix tuning.
std::vector<std::string> export_peft_prefix(core::CausalLMImpl& model,
                                            const std::string& base_model,
                                            const std::string& out_dir, bool writer,
                                            const std::string& dtype = "float32");

// PEFT's target_modules for `modules` among the model's Linear layers (see above).
std::vector<std::string> peft_target_modules(const core::CausalLMImpl& model,
                                             const std::vector<std::string>& modules);

}  // namespace shardtune::io
