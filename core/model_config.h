// Model hyper-parameters for the two transformer families, with validation that names the
// offending [model] field.
#pragma once

#include <cstdint>
#include <string>

#include "base/fields.h"

namespace shardtune::core {

struct ModelConfig : base::FieldList<ModelConfig> {
  std::string family = "llama";
  int64_t vocab_size = 320;
  int64_t hidden_size = 128;
  int64_t num_layers = 4;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 0;
  int64_t intermediate_size = 344;
  int64_t max_position_embeddings = 512;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  double dropout = 0.0;
  double init_std = 0.02;

  int64_t head_dim() const { return hidden_size / num_heads; }
  int64_t kv_heads() const { return num_kv_heads > 0 ? num_kv_heads : num_heads; }
  bool ties_embeddings() const { return family == "gpt2" || tie_word_embeddings; }

  // Throws UserError naming the field, e.g. "[model] num_heads=3 does not divide hidden_size=128".
  void validate() const;

  // JSON round trip (stored as a checkpoint attribute).
  std::string to_json() const;
  static ModelConfig from_json(const std::string& text);
  bool operator==(const ModelConfig& other) const { return to_json() == other.to_json(); }

  // The field list (base/fields.h): every option once, with its doc line. Besides the [model]
  // section it writes the JSON a checkpoint stores (to_json) and reads it back (from_json).
  template <typename Self, typename V>
  static void visit(Self& c, V& v) {
    v("family", c.family, "llama | gpt2");
    v("vocab_size", c.vocab_size, "embedding rows (>= tokenizer vocabulary)");
    v("hidden_size", c.hidden_size, "model width");
    v("num_layers", c.num_layers, "transformer blocks");
    v("num_heads", c.num_heads, "attention heads");
    v("num_kv_heads", c.num_kv_heads,
      "key/value heads for grouped-query attention (0 = num_heads)");
    v("intermediate_size", c.intermediate_size, "MLP width");
    v("max_position_embeddings", c.max_position_embeddings,
      "longest sequence (gpt2 learned positions)");
    v("rope_theta", c.rope_theta, "rotary base (llama)");
    v("norm_eps", c.norm_eps, "RMSNorm/LayerNorm epsilon");
    v("tie_word_embeddings", c.tie_word_embeddings,
      "share embedding and LM head (llama; gpt2 always ties)");
    v("attention_bias", c.attention_bias, "q/k/v biases (Qwen2-style, llama)");
    v("dropout", c.dropout, "hidden and attention dropout");
    v("init_std", c.init_std, "std of the normal weight init");
  }
};

// Number of parameters of the model this config builds (closed form; tests compare to the real
// count).
int64_t parameter_count(const ModelConfig& config);

// Model FLOPs per trained token (forward + backward = 3x forward), PaLM appendix B convention:
// 6 * matmul parameters (embedding lookup excluded, LM head included) + 12 * layers * seq * hidden
// for the attention score and value products.
double flops_per_token(const ModelConfig& config, int64_t seq_len);

}  // namespace shardtune::core
