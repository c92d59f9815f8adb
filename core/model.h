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
#include <utility>

#include "core/compute.h"
#include "core/model_config.h"
#include "core/shard.h"
#include "parallel/tp_ops.h"

namespace shardtune::core {

// Deep prompt tuning (P-tuning v2) supplies per-layer prefix keys and values through this hook.
// prefix(layer, batch) returns {keys, values}, each [batch, kv_heads_held, P, head_dim], where
// kv_heads_held is the number of key/value heads this TP rank holds (kv_heads / tp when kv_heads
// divides by tp, else all kv_heads: see CausalLMImpl::kv_heads_held). Keys get no rotary embedding;
// every query sees every prefix position.
class PrefixProvider {
 public:
  virtual ~PrefixProvider() = default;
  virtual std::pair<torch::Tensor, torch::Tensor> prefix(int64_t layer, int64_t batch) = 0;
};

class CausalLMImpl : public torch::nn::Module {
 public:
  CausalLMImpl(ModelConfig config, parallel::TpGroup tp)
      : config_(std::move(config)), tp_(std::move(tp)) {}
  // input_ids: [B, T] int64; attention_mask: [B, T] (1 = token, 0 = padding) or undefined for
  // "all tokens real". Returns this rank's logits: [B, T, vocab_size] when tp = 1, else
  // [B, T, vocab chunk] holding vocab_spec()'s rows (padding columns past the vocabulary are
  // undefined values: use vocab_parallel_causal_lm_loss or gather_logits).
  virtual torch::Tensor forward(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask) = 0;
  const ModelConfig& config() const { return config_; }
  const parallel::TpGroup& tp() const { return tp_; }
  // How the vocabulary (embedding rows and LM-head outputs) is split across TP ranks.
  virtual const ShardSpec& vocab_spec() const = 0;
  // Full logits [..., vocab_size] from this rank's [..., chunk] (collective over TP).
  torch::Tensor gather_logits(const torch::Tensor& local_logits) const;
  // Key/value heads held by this TP rank (see PrefixProvider).
  int64_t kv_heads_held() const;
  // Whether k/v projections are split over TP (kv_heads % tp == 0) or replicated.
  bool kv_heads_split() const { return config_.kv_heads() % tp_.size() == 0; }

  // How forward computes (core/compute.h): fused kernels, bf16 with fp32 masters, per-block
  // recomputation. Parameters stay fp32 whatever is set; with bf16 the logits are bf16.
  void set_compute(const ComputeOptions& c) { compute_ = c; }
  const ComputeOptions& compute() const { return compute_; }
  // bf16 under compute().bf16, else fp32: the dtype of GEMM inputs and attention.
  torch::ScalarType compute_dtype() const {
    return compute_.bf16 ? torch::kBFloat16 : torch::kFloat;
  }

  void set_prefix_provider(std::shared_ptr<PrefixProvider> p) { prefix_ = std::move(p); }
  PrefixProvider* prefix_provider() const { return prefix_.get(); }

 protected:
  ModelConfig config_;
  parallel::TpGroup tp_;
  std::shared_ptr<PrefixProvider> prefix_;
  ComputeOptions compute_;
};

// Builds and initialises a model. Initialisation is a pure function of (seed, parameter name):
// every tensor draws from its own generator, so construction order, strategies that add modules,
// or sharding (which keeps a slice of the same full tensor) never change another tensor's values.
// Under TP every rank builds its shard: a parameter's values are the slice (per its ShardSpec) of
// the full tensor a one-rank build would make, so TP=k gathered equals TP=1 for the same seed.
std::shared_ptr<CausalLMImpl> build_model(const ModelConfig& config, uint64_t seed,
                                          parallel::TpGroup tp = {});

// Checks that `config` can be split over tp ranks (heads, MLP width); UserError naming the field.
void validate_tp(const ModelConfig& config, int tp);

// (Re)initialises one named parameter in place by the rule above.
// `spec` gives the global shape; param (local) receives its slice.
void init_parameter(torch::Tensor& param, const std::string& name, const ShardSpec& spec,
                    const ModelConfig& config, uint64_t seed);

// A 64-bit seed for a named stream (FNV-1a of the name mixed with the base seed).
uint64_t named_seed(uint64_t seed, const std::string& name);

// A full fp32 tensor of `shape` drawn from N(0, std^2) on the stream named `name`: the same values
// on every rank and at every TP size (each rank keeps its slice of it).
torch::Tensor named_normal(const std::vector<int64_t>& shape, double std, uint64_t seed,
                           const std::string& name);

}  // namespace shardtune::core
