// PEFT adapters back into ShardTune (the inverse of io/peft_export.h): a LoRA adapter into the
// <m>.lora.A / <m>.lora.B parameters a LoRA strategy added, a prefix-tuning adapter into the
// direct-mode P-tuning v2 prefix (prefix_encoder.prefix). Each rank keeps its TP slice of every
// tensor. Adapter folders are untrusted: adapter_config.json is checked field by field and
// adapter_model.safetensors through io/safetensors.h; every tensor must be used and every
// parameter filled, with the shapes the model's strategy gives it.
//
// Prefix keys: export rotated each key by position P for the llama family (PEFT puts the prefix in
// the KV cache, moving real tokens to positions P, P+1, ...); import rotates them back by -P, in
// float64, so a round trip agrees with the original prefix to float rounding (not bit for bit).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model.h"

namespace shardtune::io {

struct PeftAdapterConfig {
  std::string peft_type;  // "LORA" or "PREFIX_TUNING"
  std::string base_model;  // base_model_name_or_path ("" when null)
  // LORA
  int64_t r = 0;
  double lora_alpha = 0.0;
  bool use_rslora = false;
  bool fan_in_fan_out = false;
  // PREFIX_TUNING
  int64_t num_virtual_tokens = 0;
  int64_t token_dim = 0;
  int64_t num_layers = 0;
  int64_t num_attention_heads = 0;
};

// Whether `dir` holds adapter_config.json (a PEFT adapter rather than a model or checkpoint).
bool is_peft_adapter(const std::string& dir);

// Reads and checks DIR/adapter_config.json: task_type CAUSAL_LM; LORA with r >= 1, lora_alpha,
// use_rslora, bias "none", no DoRA, no per-module rank or alpha patterns; PREFIX_TUNING with
// prefix_projection false (a projected prefix is exported in its effective form). UserError
// naming the file and field otherwise.
PeftAdapterConfig read_peft_config(const std::string& dir);

// Fills every <m>.lora.A [r, in] and <m>.lora.B [out, r] of `model` from
// base_model.model.<m>.lora_A.weight / lora_B.weight. The adapter's r must be the model's; its
// lora_alpha and use_rslora must equal `alpha` and `rslora` (the strategy's scale). Not
// collective. Returns the number of tensors loaded.
int64_t load_peft_lora(core::CausalLMImpl& model, const std::string& dir, double alpha,
                       bool rslora);

// Fills prefix_encoder.prefix [layers, 2, kv_heads, P, head_dim] from prompt_embeddings
// [P, layers * 2 * kv_heads * head_dim] (keys rotated back by -P for the llama family). GPT-2 is
// refused (its prefix has no PEFT form, io/peft_export.h). Not collective.
void load_peft_prefix(core::CausalLMImpl& model, const std::string& dir);

}  // namespace shardtune::io
