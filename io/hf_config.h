// Hugging Face config.json <-> core::ModelConfig, for LlamaForCausalLM, Qwen2ForCausalLM,
// MistralForCausalLM and GPT2LMHeadModel. No LibTorch (fuzzed on its own).
//
// Import maps the fields ShardTune's two families implement and refuses, with one UserError naming
// the file and field, anything they cannot honour exactly:
//   llama, qwen2, mistral -> family "llama" (RMSNorm, rotate-half RoPE, SwiGLU, grouped-query
//     attention); qwen2 -> attention_bias = true (q/k/v biases, as Qwen2's modeling code always
//     has). Read: hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
//     vocab_size (required), num_key_value_heads (default per model type: llama and qwen2 = heads;
//     mistral = 8; explicit null = heads), max_position_embeddings, rms_norm_eps, rope_theta (top
//     level, or rope_parameters.rope_theta), tie_word_embeddings, initializer_range.
//     Refused: rope_scaling not null or rope_parameters.rope_type other than "default" (Llama 3's
//     "llama3" scaling included); partial_rotary_factor != 1; head_dim != hidden_size /
//     num_attention_heads; hidden_act other than "silu" (or its alias "swish"); for llama,
//     attention_bias = true (HF then biases o_proj too, which the model lacks) and mlp_bias = true
//     (Qwen2's and Mistral's modeling code ignores both keys, so ShardTune does too);
//     quantization_config;
//     sliding-window attention that can change a result: mistral with sliding_window (absent =
//     4096, as MistralConfig defaults) < max_position_embeddings; qwen2 with use_sliding_window =
//     true, sliding_window < max_position_embeddings and max_window_layers < num_hidden_layers;
//     layer_types naming anything but "full_attention". A window at least as long as
//     max_position_embeddings (ShardTune's bound on sequence length) never changes a result.
//   gpt2 -> family "gpt2". Read: n_embd, n_layer, n_head, vocab_size, n_positions (required),
//     n_inner (null = 4 * n_embd), layer_norm_epsilon, initializer_range. Refused:
//     activation_function other than "gelu_new" / "gelu_pytorch_tanh" (the tanh GELU the model
//     uses); scale_attn_weights = false; scale_attn_by_inverse_layer_idx = true;
//     add_cross_attention = true; tie_word_embeddings = false; quantization_config.
// Dropout fields are training choices, not model semantics: ignored (ModelConfig.dropout stays 0).
// Unknown keys are ignored, as transformers does. "architectures" (when present) must name one
// supported class that matches model_type.
#pragma once

#include <string>
#include <vector>

#include "base/fields.h"
#include "core/model_config.h"

namespace shardtune::io {

// [model] from_hf: the model's architecture from DIR/config.json (replacing the other [model]
// architecture fields, which may only repeat its values) and its weights from DIR's safetensors,
// loaded after the model is built (launch/weights.h). Visited in the [model] section.
struct ModelSource : base::FieldList<ModelSource> {
  std::string from_hf;

  template <typename Self, typename V>
  static void visit(Self& c, V& v) {
    v("from_hf", c.from_hf,
      "Hugging Face model folder (config.json + safetensors): architecture and weights from it");
  }
};

struct HfModelConfig {
  std::string architecture;  // "LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM",
                             // "GPT2LMHeadModel"
  std::string model_type;    // "llama", "qwen2", "mistral", "gpt2"
  core::ModelConfig config;  // validated (ModelConfig::validate)
  std::string dtype;         // torch_dtype / dtype: "float32", "float16", "bfloat16", or ""
};

// Parses config.json text; `source` names the file in errors ("DIR/config.json: rope_scaling ...").
HfModelConfig parse_hf_config(const std::string& text, const std::string& source);
// Reads `path`: a config.json file or a folder holding one.
HfModelConfig read_hf_config(const std::string& path);

// The HF architecture class for a config: gpt2 -> GPT2LMHeadModel; llama family: model_type
// "qwen2" (or, when model_type is empty, attention_bias) -> Qwen2ForCausalLM, "mistral" ->
// MistralForCausalLM, else LlamaForCausalLM. std::invalid_argument when model_type does not fit
// the config (qwen2 without q/k/v biases, llama/mistral with them, gpt2 vs llama family).
std::string hf_model_type_for(const core::ModelConfig& config, const std::string& model_type = "");

// config.json text for `config` (export). `model_type` as for hf_model_type_for; `dtype` is written
// as torch_dtype. `base`: optional text of the source config.json: its other keys (token ids,
// generation settings, _name_or_path, ...) are kept and every field ShardTune owns is overwritten,
// so parse_hf_config of the result gives back `config`.
std::string hf_config_json(const core::ModelConfig& config, const std::string& model_type,
                           const std::string& dtype, const std::string& base = "");

// The parameter names an HF model of this config has, as transformers' save_pretrained writes them
// (gpt2 with the "transformer." prefix; lm_head.weight only when untied), sorted. ShardTune's
// parameter names are the same (core/model.h); load and export check that they agree.
std::vector<std::string> hf_parameter_names(const core::ModelConfig& config);

// Whether a GPT-2 weight is stored by transformers' Conv1D ([in, out], transposed from ShardTune's
// [out, in]): attn.c_attn, attn.c_proj, mlp.c_fc and mlp.c_proj weights.
bool is_conv1d_weight(const core::ModelConfig& config, const std::string& name);

}  // namespace shardtune::io
