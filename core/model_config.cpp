#include "core/model_config.h"

#include <nlohmann/json.hpp>

#include "base/errors.h"

namespace shardtune::core {

namespace {
std::string field(const char* name, int64_t value) {
  return std::string("[model] ") + name + "=" + std::to_string(value);
}
}  // namespace

void ModelConfig::validate() const {
  require(family == "llama" || family == "gpt2",
          "[model] family='" + family + "' is unknown (known: llama, gpt2)");
  for (auto [name, value] : {std::pair{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                             {"num_layers", num_layers}, {"num_heads", num_heads},
                             {"intermediate_size", intermediate_size},
                             {"max_position_embeddings", max_position_embeddings}}) {
    require(value > 0, field(name, value) + " must be positive");
  }
  require(hidden_size % num_heads == 0,
          field("num_heads", num_heads) + " does not divide hidden_size=" +
              std::to_string(hidden_size));
  require(num_kv_heads >= 0, field("num_kv_heads", num_kv_heads) + " must be >= 0");
  require(num_heads % kv_heads() == 0,
          field("num_kv_heads", num_kv_heads) + " must divide num_heads=" +
              std::to_string(num_heads));
  require(family == "llama" || num_kv_heads == 0 || num_kv_heads == num_heads,
          "[model] num_kv_heads applies to family=llama only");
  require(head_dim() % 2 == 0 || family != "llama",
          "[model] hidden_size/num_heads=" + std::to_string(head_dim()) +
              " must be even for rotary embeddings");
  require(dropout >= 0.0 && dropout < 1.0, "[model] dropout must be in [0, 1)");
  require(norm_eps > 0.0, "[model] norm_eps must be positive");
  require(init_std > 0.0, "[model] init_std must be positive");
}

std::string ModelConfig::to_json() const {
  nlohmann::ordered_json j;
  fields([&](const char* key, const auto& value, const char*) { j[key] = value; });
  return j.dump();
}

ModelConfig ModelConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw UserError(std::string("model config JSON is invalid: ") + e.what());
  }
  ModelConfig c;
  c.fields([&](const char* key, auto& out, const char*) {
    if (!j.contains(key)) throw UserError(std::string("model config JSON lacks '") + key + "'");
    try {
      j.at(key).get_to(out);
    } catch (const std::exception&) {
      throw UserError(std::string("model config JSON: '") + key + "' has the wrong type");
    }
  });
  return c;
}

int64_t parameter_count(const ModelConfig& c) {
  const int64_t h = c.hidden_size, v = c.vocab_size, f = c.intermediate_size;
  const int64_t kv = c.kv_heads() * c.head_dim();
  int64_t per_layer = 0, total = 0;
  if (c.family == "llama") {
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * f + 2 * h;  // q,o + k,v + gate,up,down + norms
    if (c.attention_bias) per_layer += h + 2 * kv;
    total = v * h + c.num_layers * per_layer + h + (c.tie_word_embeddings ? 0 : v * h);
  } else {
    per_layer = (3 * h * h + 3 * h) + (h * h + h) + (h * f + f) + (f * h + h) + 4 * h;
    total = v * h + c.max_position_embeddings * h + c.num_layers * per_layer + 2 * h;
  }
  return total;
}

double flops_per_token(const ModelConfig& c, int64_t seq_len) {
  const double h = c.hidden_size, f = c.intermediate_size, v = c.vocab_size;
  const double kv = static_cast<double>(c.kv_heads() * c.head_dim());
  const double mlp = c.family == "llama" ? 3 * h * f : 2 * h * f;
  const double matmul_params = c.num_layers * (2 * h * h + 2 * h * kv + mlp) + v * h;
  return 6.0 * matmul_params + 12.0 * c.num_layers * seq_len * h;
}

}  // namespace shardtune::core
