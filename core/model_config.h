// Model hyper-parameters for the two transformer families, with validation that names the
// offending [model] field.
#pragma once

#include <cstdint>
#include <string>

namespace shardtune::core {

struct ModelConfig {
  std::string family = "llama";          // "llama" (RMSNorm, RoPE, SwiGLU, GQA) or "gpt2"
  int64_t vocab_size = 320;              // >= the tokenizer's vocabulary (rows may be padding)
  int64_t hidden_size = 128;
  int64_t num_layers = 4;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 0;              // llama grouped-query attention; 0 = num_heads
  int64_t intermediate_size = 344;       // MLP width
  int64_t max_position_embeddings = 512; // gpt2 learned positions; a bound on seq_len for both
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool tie_word_embeddings = false;      // llama only; gpt2 always ties
  bool attention_bias = false;           // q/k/v biases (Qwen2-style); llama only
  double dropout = 0.0;                  // hidden and attention-probability dropout
  double init_std = 0.02;                // normal init of weights

  int64_t head_dim() const { return hidden_size / num_heads; }
  int64_t kv_heads() const { return num_kv_heads > 0 ? num_kv_heads : num_heads; }
  bool ties_embeddings() const { return family == "gpt2" || tie_word_embeddings; }

  // Throws UserError naming the field, e.g. "[model] num_heads=3 does not divide hidden_size=128".
  void validate() const;

  // JSON round trip (stored as a checkpoint attribute).
  std::string to_json() const;
  static ModelConfig from_json(const std::string& text);
  bool operator==(const ModelConfig& other) const { return to_json() == other.to_json(); }
};

// Number of parameters of the model this config builds (closed form; tests compare to the real
// count).
int64_t parameter_count(const ModelConfig& config);

// Model FLOPs per trained token (forward + backward = 3x forward), PaLM appendix B convention:
// 6 * matmul parameters (embedding lookup excluded, LM head included) + 12 * layers * seq * hidden
// for the attention score and value products.
double flops_per_token(const ModelConfig& config, int64_t seq_len);

}  // namespace shardtune::core
