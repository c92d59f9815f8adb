// P-tuning v2 (Liu et al. 2022): deep prompt tuning. Every attention layer gets pre_seq_len
// trainable key/value positions that every token sees (keys without rotary); the backbone is
// frozen. Works with grouped-query attention: prefixes exist per key/value head.
//
// Options ([strategy.ptuning-v2]):
//   pre_seq_len = 16          prefix positions per layer
//   prefix_projection = false reparameterise through embedding -> Linear -> tanh -> Linear
//   prefix_hidden_size = 512  width of that MLP
//   init_std = 0.02           std of the initial prefix (direct mode) or of the embedding's
//                             output projection scale (projection mode)
//   dropout = 0.0             dropout on the prefix keys/values (training only)
//   init_from =               checkpoint file or directory: start from its prefix tensors
//                             (/model/prefix_encoder.*, e.g. a run on another task or language);
//                             the prefix shape options must match the saved ones. The strategy
//                             only names the file (added_parameters_from); launch/ reads it into
//                             the prefix parameters apply() registered.
//
// Parameters (registered on the model as module "prefix_encoder"):
//   direct:     prefix_encoder.prefix  [layers, 2, kv_heads, pre_seq_len, head_dim]
//               (2 = key, value); under TP split on dim 2 like the k/v heads when kv_heads % tp
//               == 0, else replicated (each rank then uses its heads' share: gradients summed
//               over TP through copy_to_tp).
//   projection: prefix_encoder.embedding [pre_seq_len, hidden], .proj_in.{weight,bias},
//               .proj_out.{weight,bias} -> [pre_seq_len, layers * 2 * kv_heads * head_dim];
//               replicated, each rank keeps its kv heads' columns, gradients summed over TP.
#pragma once

#include <string>

#include "core/model.h"
#include "core/strategy.h"

namespace shardtune::strategies {

struct PrefixOptions {
  int64_t pre_seq_len = 16;
  bool projection = false;
  int64_t hidden = 512;
  double init_std = 0.02;
  double dropout = 0.0;
};

class PrefixEncoder final : public torch::nn::Module,
                            public core::ShardedModule,
                            public core::PrefixProvider {
 public:
  PrefixEncoder(const core::CausalLMImpl& model, PrefixOptions options);
  // keys, values: [batch, kv_heads_held, pre_seq_len, head_dim]. Layer 0 computes every layer's
  // prefix (one MLP pass in projection mode); later layers of the same forward reuse it.
  std::pair<torch::Tensor, torch::Tensor> prefix(int64_t layer, int64_t batch) override;
  core::ShardSpec shard_spec(const std::string& param_name) const override;
  // Deterministic init from named streams of `seed` (TP=k equals TP=1).
  void initialise(uint64_t seed);
  // All layers' prefixes in this rank's kv-head layout: [layers, 2, kv_heads_held, P, head_dim].
  torch::Tensor all_layers();

  torch::Tensor prefix_param;  // direct mode
  torch::Tensor embedding, in_weight, in_bias, out_weight, out_bias;  // projection mode

 private:
  PrefixOptions options_;
  core::ModelConfig config_;
  parallel::TpGroup tp_;
  int64_t kv_heads_, kv_held_, head_dim_;
  bool split_;
  core::ShardSpec prefix_spec_;
  torch::Tensor cache_;
};

class PtuningV2Strategy final : public core::Strategy {
 public:
  explicit PtuningV2Strategy(core::StrategyOptions options);
  std::string name() const override { return "ptuning-v2"; }
  void apply(core::CausalLMImpl& model) override;
  bool is_added_parameter(const std::string& name) const override;
  std::string added_parameters_from() const override { return init_from_; }
  // No merged form: the prefix is extra attention state, not a change of base weights.
  void merge(core::CausalLMImpl& model) override;
  // Detaches the prefix from the model (the base model's outputs again; parameters stay
  // registered but unused).
  static void remove_prefix(core::CausalLMImpl& model);

 private:
  PrefixOptions options_;
  std::string init_from_;
};

}  // namespace shardtune::strategies
