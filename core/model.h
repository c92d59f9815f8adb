// Decoder-only causal language models. Parameter names are Hugging Face's:
//   llama: model.embed_tokens.weight, model.layers.N.self_attn.{q,k,v,o}_proj.weight,
//          model.layers.N.mlp.{gate,up,down}_proj.weight, model.layers.N.{input,post_attention}
//          _layernorm.weight, model.norm.weight, lm_head.weight (absent when tied)
//   gpt2:  transformer.{wte,wpe}.weight, transformer.h.N.{ln_1,ln_2}.{weight,bias},
//          transformer.h.N.attn.{c_attn,c_proj}.{weight,bias},
//          transformer.h.N.mlp.{c_fc,c_proj}.{weight,bias}, transformer.ln_f.{weight,bias};
//          the LM head is tied to wte. Linear weights are stored [out, in] (torch.nn.Linear
//          layout); Hugging Face's GPT-2 Conv1D stores [in, out], so import/export transposes.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>

#include "core/model_config.h"

namespace shardtune::core {

class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(ModelConfig config) : config_(std::move(config)) {}
  // input_ids: [B, T] int64; attention_mask: [B, T] (1 = token, 0 = padding) or undefined for
  // "all tokens real". Returns logits [B, T, vocab_size].
  virtual torch::Tensor forward(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask) = 0;
  const ModelConfig& config() const { return config_; }

 protected:
  ModelConfig config_;
};

// Builds and initialises a model. Initialisation is a pure function of (seed, parameter name):
// every tensor draws from its own generator, so construction order, strategies that add modules,
// or sharding (which keeps a slice of the same full tensor) never change another tensor's values.
std::shared_ptr<CausalLMImpl> build_model(const ModelConfig& config, uint64_t seed);

// (Re)initialises one named parameter in place by the rule above.
void init_parameter(torch::Tensor& param, const std::string& name, const ModelConfig& config,
                    uint64_t seed);

// A 64-bit seed for a named stream (FNV-1a of the name mixed with the base seed).
uint64_t named_seed(uint64_t seed, const std::string& name);

}  // namespace shardtune::core
