// core::ModelConfig -> Hugging Face config.json (export): the model type a family is written as,
// and the config fields, on top of the imported config.json when there was one.
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "io/hf_architectures.h"
#include "io/hf_config.h"

namespace shardtune::io {

using ordered_json = nlohmann::ordered_json;

std::string hf_model_type_for(const core::ModelConfig& c, const std::string& model_type) {
  if (c.family == "gpt2") {
    if (!model_type.empty() && model_type != "gpt2") {
      throw std::invalid_argument("model_type '" + model_type + "' does not fit family gpt2");
    }
    return "gpt2";
  }
  std::string t = model_type.empty() ? (c.attention_bias ? "qwen2" : "llama") : model_type;
  if (t != "llama" && t != "qwen2" && t != "mistral") {
    throw std::invalid_argument("model_type '" + t + "' does not fit family llama");
  }
  if ((t == "qwen2") != c.attention_bias) {
    throw std::invalid_argument("model_type '" + t + "' " +
                                (c.attention_bias ? "has no q/k/v biases" : "needs q/k/v biases"));
  }
  return t;
}

std::string hf_config_json(const core::ModelConfig& c, const std::string& model_type,
                           const std::string& dtype, const std::string& base) {
  const std::string type = hf_model_type_for(c, model_type);
  std::string arch;
  for (const auto& known : kArchitectures) {
    if (type == known.model_type) arch = known.class_name;
  }
  ordered_json j = ordered_json::object();
  if (!base.empty()) {
    j = ordered_json::parse(base);
    if (!j.is_object()) throw std::invalid_argument("hf_config_json: base is not a JSON object");
  }
  j["architectures"] = {arch};
  j["model_type"] = type;
  j["vocab_size"] = c.vocab_size;
  j["initializer_range"] = c.init_std;
  j["torch_dtype"] = dtype.empty() ? "float32" : dtype;
  if (j.contains("dtype")) j["dtype"] = j["torch_dtype"];
  j.erase("quantization_config");
  if (type == "gpt2") {
    const int64_t inner = c.intermediate_size;
    j["n_embd"] = c.hidden_size;
    j["n_layer"] = c.num_layers;
    j["n_head"] = c.num_heads;
    j["n_inner"] = inner;
    j["n_positions"] = c.max_position_embeddings;
    j["n_ctx"] = c.max_position_embeddings;
    j["layer_norm_epsilon"] = c.norm_eps;
    j["activation_function"] = "gelu_new";
    j["scale_attn_weights"] = true;
    j["scale_attn_by_inverse_layer_idx"] = false;
    j["add_cross_attention"] = false;
    j["tie_word_embeddings"] = true;
    for (const char* k : {"resid_pdrop", "embd_pdrop", "attn_pdrop"}) j[k] = c.dropout;
    return j.dump(2) + "\n";
  }
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.kv_heads();
  j["head_dim"] = c.head_dim();
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = nullptr;
  if (j.contains("rope_parameters")) {
    j["rope_parameters"] = {{"rope_theta", c.rope_theta}, {"rope_type", "default"}};
  }
  j.erase("partial_rotary_factor");
  j.erase("layer_types");
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_dropout"] = 0.0;
  if (type == "qwen2") {
    j["use_sliding_window"] = false;
    j["sliding_window"] = nullptr;
    j["max_window_layers"] = c.num_layers;
  } else {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
    if (type == "mistral") j["sliding_window"] = nullptr;
  }
  return j.dump(2) + "\n";
}

}  // namespace shardtune::io
