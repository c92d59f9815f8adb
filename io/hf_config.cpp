#include "io/hf_config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "base/json.h"
#include "base/strings.h"
#include "io/hf_architectures.h"

namespace shardtune::io {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int64_t kMaxDim = int64_t{1} << 31;  // keeps products of two dims inside int64

using base::printable;

std::string dumped(const json& j) { return printable(j.dump(), 80); }

// Reads fields of one config object, naming `source` and the field in every error.
class Fields {
 public:
  Fields(const json& j, std::string source) : j_(j), source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& why) const {
    // "field=value why" when `why` starts with the value, else "field why".
    throw UserError(source_ + ": " + field + (why.rfind('=', 0) == 0 ? "" : " ") + why);
  }
  bool has(const char* key) const { return j_.contains(key); }
  bool is_null(const char* key) const { return j_.contains(key) && j_.at(key).is_null(); }
  // Present and not null.
  bool given(const char* key) const { return has(key) && !j_.at(key).is_null(); }
  const json& at(const char* key) const { return j_.at(key); }

  int64_t dim(const char* key) const {
    if (!given(key)) fail(key, "is missing (config.json must give the model's size)");
    return dim_value(key, j_.at(key));
  }
  int64_t dim_or(const char* key, int64_t fallback) const {
    return given(key) ? dim_value(key, j_.at(key)) : fallback;
  }
  double positive_or(const char* key, double fallback) const {
    if (!given(key)) return fallback;
    return positive_value(key, j_.at(key));
  }
  bool flag_or(const char* key, bool fallback) const {
    if (!given(key)) return fallback;
    if (!j_.at(key).is_boolean()) fail(key, "must be true or false, got " + dumped(j_.at(key)));
    return j_.at(key).get<bool>();
  }
  std::string string_or(const char* key, const std::string& fallback) const {
    if (!given(key)) return fallback;
    if (!j_.at(key).is_string()) fail(key, "must be a string, got " + dumped(j_.at(key)));
    return j_.at(key).get<std::string>();
  }
  int64_t dim_value(const std::string& key, const json& v) const {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() >= kMaxDim) {
      fail(key, "must be a positive integer below 2^31, got " + dumped(v));
    }
    return v.get<int64_t>();
  }
  double positive_value(const std::string& key, const json& v) const {
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() <= 0.0) {
      fail(key, "must be a positive number, got " + dumped(v));
    }
    return v.get<double>();
  }

 private:
  const json& j_;
  std::string source_;
};

json parse_strict(const std::string& text, const std::string& source) {
  json j = base::parse_json_strict(text, source);
  if (!j.is_object()) throw UserError(source + ": not a JSON object");
  return j;
}

// rope_theta from the top level and/or rope_parameters / rope_scaling, refusing any scaling.
double read_rope_theta(const Fields& f) {
  double theta = f.positive_or("rope_theta", 10000.0);
  const bool top = f.given("rope_theta");
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    if (!f.given(key)) continue;
    const json& r = f.at(key);
    if (!r.is_object()) f.fail(key, "must be an object or null, got " + dumped(r));
    std::string type = "default";
    for (const char* type_key : {"rope_type", "type"}) {
      if (r.contains(type_key)) {
        if (!r.at(type_key).is_string())
          f.fail(std::string(key) + "." + type_key, "must be a string");
        type = r.at(type_key).get<std::string>();
      }
    }
    if (type != "default") {
      f.fail(std::string(key),
             "asks for '" + printable(type) +
                 "' RoPE scaling, which ShardTune does not implement (plain "
                 "RoPE only); a scaled model would silently compute something else");
    }
    for (const auto& [k, v] : r.items()) {
      if (k == "rope_type" || k == "type") continue;
      if (k == "rope_theta") continue;
      if (k == "partial_rotary_factor" && v.is_number() && v.get<double>() == 1.0) continue;
      f.fail(std::string(key) + "." + k, "is not supported (plain RoPE only), got " + dumped(v));
    }
    if (r.contains("rope_theta")) {
      const double t = f.positive_value(std::string(key) + ".rope_theta", r.at("rope_theta"));
      if (top && t != theta) {
        f.fail(std::string(key) + ".rope_theta", "differs from the top-level rope_theta");
      }
      theta = t;
    }
  }
  return theta;
}

void read_llama_family(const Fields& f, const std::string& type, core::ModelConfig& c) {
  c.family = "llama";
  c.hidden_size = f.dim("hidden_size");
  c.num_layers = f.dim("num_hidden_layers");
  c.num_heads = f.dim("num_attention_heads");
  c.intermediate_size = f.dim("intermediate_size");
  c.vocab_size = f.dim("vocab_size");
  // Defaults of LlamaConfig / Qwen2Config / MistralConfig when a key is absent; explicit null
  // means "as many as attention heads" for all three.
  const int64_t kv_default = type == "mistral" ? 8 : c.num_heads;
  c.num_kv_heads =
      f.is_null("num_key_value_heads") ? c.num_heads : f.dim_or("num_key_value_heads", kv_default);
  if (c.num_kv_heads > c.num_heads || c.num_heads % c.num_kv_heads != 0) {
    f.fail("num_key_value_heads",
           "=" + std::to_string(c.num_kv_heads) +
               " must divide num_attention_heads=" + std::to_string(c.num_heads));
  }
  const int64_t max_pos_default = type == "mistral" ? 4096 * 32 : type == "qwen2" ? 32768 : 2048;
  c.max_position_embeddings = f.dim_or("max_position_embeddings", max_pos_default);
  c.norm_eps = f.positive_or("rms_norm_eps", 1e-6);
  c.rope_theta = read_rope_theta(f);
  c.tie_word_embeddings = f.flag_or("tie_word_embeddings", false);
  c.attention_bias = type == "qwen2";  // Qwen2's q/k/v always carry biases; o_proj never does

  if (f.given("head_dim") &&
      f.dim_value("head_dim", f.at("head_dim")) * c.num_heads != c.hidden_size) {
    f.fail("head_dim", "=" + dumped(f.at("head_dim")) +
                           " differs from hidden_size / num_attention_heads = " +
                           std::to_string(c.hidden_size / c.num_heads) +
                           " (ShardTune's attention uses hidden_size / heads)");
  }
  if (f.given("partial_rotary_factor") && !(f.at("partial_rotary_factor").is_number() &&
                                            f.at("partial_rotary_factor").get<double>() == 1.0)) {
    f.fail("partial_rotary_factor",
           "must be 1 (RoPE on the whole head), got " + dumped(f.at("partial_rotary_factor")));
  }
  const std::string act = f.string_or("hidden_act", "silu");
  if (act != "silu" && act != "swish") {
    f.fail("hidden_act", "='" + printable(act) + "' is not supported (the llama family uses silu)");
  }
  // Only LlamaConfig honours these two; Qwen2's and Mistral's modeling code ignores them.
  if (type == "llama" && f.flag_or("attention_bias", false)) {
    f.fail("attention_bias",
           "=true is not supported (biases on q/k/v and o_proj; ShardTune's "
           "llama family has q/k/v biases only, as Qwen2)");
  }
  if (type == "llama" && f.flag_or("mlp_bias", false)) {
    f.fail("mlp_bias", "=true is not supported (MLP without biases)");
  }

  // Sliding-window attention: refused whenever a window shorter than the longest sequence the
  // model accepts (max_position_embeddings) applies to some layer.
  const auto window_of = [&]() -> int64_t {
    if (!f.given("sliding_window")) return 0;
    return f.dim_value("sliding_window", f.at("sliding_window"));
  };
  if (type == "mistral") {
    const int64_t w = f.has("sliding_window") ? window_of() : 4096;  // MistralConfig's default
    if (w > 0 && w < c.max_position_embeddings) {
      f.fail("sliding_window", "=" + std::to_string(w) +
                                   " is shorter than max_position_embeddings=" +
                                   std::to_string(c.max_position_embeddings) +
                                   ": sliding-window attention is not implemented (set "
                                   "max_position_embeddings <= sliding_window in a copy of "
                                   "config.json to train on sequences the window cannot affect)");
    }
  }
  if (type == "qwen2" && f.flag_or("use_sliding_window", false)) {
    const int64_t w = f.has("sliding_window") ? window_of() : 4096;
    const int64_t first = f.dim_or("max_window_layers", 28);
    if (w > 0 && w < c.max_position_embeddings && first < c.num_layers) {
      f.fail("use_sliding_window",
             "=true with sliding_window=" + std::to_string(w) +
                 " < max_position_embeddings=" + std::to_string(c.max_position_embeddings) +
                 " on layers " + std::to_string(first) + ".." + std::to_string(c.num_layers - 1) +
                 ": sliding-window attention is not implemented");
    }
  }
  if (f.given("layer_types")) {
    const json& lt = f.at("layer_types");
    if (!lt.is_array()) f.fail("layer_types", "must be a list");
    for (const auto& t : lt) {
      if (!t.is_string() || t.get<std::string>() != "full_attention") {
        f.fail("layer_types", "names " + dumped(t) + ": only full_attention is implemented");
      }
    }
  }
}

void read_gpt2(const Fields& f, core::ModelConfig& c) {
  c.family = "gpt2";
  c.hidden_size = f.dim("n_embd");
  c.num_layers = f.dim("n_layer");
  c.num_heads = f.dim("n_head");
  c.vocab_size = f.dim("vocab_size");
  c.max_position_embeddings = f.dim("n_positions");
  c.num_kv_heads = 0;
  if (c.hidden_size >= kMaxDim / 4) f.fail("n_embd", "is too large");
  c.intermediate_size = f.dim_or("n_inner", 4 * c.hidden_size);
  c.norm_eps = f.positive_or("layer_norm_epsilon", 1e-5);
  c.tie_word_embeddings = false;  // ModelConfig: gpt2 always ties (ties_embeddings())
  const std::string act = f.string_or("activation_function", "gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh" && act != "gelu_fast") {
    f.fail("activation_function", "='" + printable(act) +
                                      "' is not supported (ShardTune's GPT-2 uses the tanh GELU: "
                                      "gelu_new, gelu_pytorch_tanh or gelu_fast)");
  }
  if (!f.flag_or("scale_attn_weights", true)) {
    f.fail("scale_attn_weights", "=false is not supported (scores are scaled by 1/sqrt(head_dim))");
  }
  if (f.flag_or("scale_attn_by_inverse_layer_idx", false)) {
    f.fail("scale_attn_by_inverse_layer_idx", "=true is not supported");
  }
  if (f.flag_or("add_cross_attention", false))
    f.fail("add_cross_attention", "=true is not supported");
  if (!f.flag_or("tie_word_embeddings", true)) {
    f.fail("tie_word_embeddings", "=false is not supported for GPT-2 (the LM head is wte)");
  }
}

}  // namespace

HfModelConfig parse_hf_config(const std::string& text, const std::string& source) {
  const json j = parse_strict(text, source);
  const Fields f(j, source);
  HfModelConfig out;

  std::string arch;
  if (f.given("architectures")) {
    const json& a = f.at("architectures");
    if (!a.is_array() || a.size() != 1 || !a[0].is_string()) {
      f.fail("architectures", "must list exactly one class, got " + dumped(a));
    }
    arch = a[0].get<std::string>();
  }
  std::string type = f.string_or("model_type", "");
  if (type.empty() && arch.empty()) {
    throw UserError(source + ": neither model_type nor architectures is given");
  }
  const HfArchitecture* match = nullptr;
  for (const auto& known : kArchitectures) {
    if ((type.empty() || type == known.model_type) && (arch.empty() || arch == known.class_name)) {
      match = &known;
    }
  }
  if (!match) {
    std::string what =
        !arch.empty() && !type.empty()
            ? "architectures ['" + printable(arch) + "'] with model_type '" + printable(type) + "'"
        : !arch.empty() ? "architectures ['" + printable(arch) + "']"
                        : "model_type '" + printable(type) + "'";
    throw UserError(source + ": " + what +
                    " is not supported (supported: LlamaForCausalLM/llama, Qwen2ForCausalLM/qwen2, "
                    "MistralForCausalLM/mistral, GPT2LMHeadModel/gpt2)");
  }
  out.model_type = match->model_type;
  out.architecture = match->class_name;
  if (f.given("quantization_config")) {
    f.fail("quantization_config", "is present: quantized weights are not supported");
  }
  if (out.model_type == "gpt2") {
    read_gpt2(f, out.config);
  } else {
    read_llama_family(f, out.model_type, out.config);
  }
  out.config.dropout = 0.0;
  const double init = f.given("initializer_range") && f.at("initializer_range").is_number()
                          ? f.at("initializer_range").get<double>()
                          : 0.02;
  out.config.init_std = std::isfinite(init) && init > 0.0 ? init : 0.02;
  for (const char* key : {"torch_dtype", "dtype"}) {
    if (f.given(key) && f.at(key).is_string()) out.dtype = f.at(key).get<std::string>();
  }
  try {
    out.config.validate();
  } catch (const UserError& e) {
    throw UserError(source + ": " + e.what());
  }
  return out;
}

HfModelConfig read_hf_config(const std::string& path) {
  fs::path p(path);
  if (fs::is_directory(p)) p /= "config.json";
  std::ifstream in(p, std::ios::binary);
  if (!in) throw UserError(p.string() + ": cannot open (an HF model folder needs config.json)");
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > (size_t{16} << 20)) throw UserError(p.string() + ": larger than 16 MiB");
  return parse_hf_config(text.str(), p.string());
}

}  // namespace shardtune::io
