// LoRA (Hu et al. 2021): y = W0 x + scale * B A dropout(x) on chosen Linear layers, W0 frozen.
// scale = alpha / r (rsLoRA: alpha / sqrt(r)). A [r, in] starts Kaiming-uniform(a = sqrt(5)),
// B [out, r] starts at zero, so the adapted model equals the base model at step 0.
//
// Options ([strategy.lora]):
//   r = 8                 rank
//   alpha = 16            scaling numerator
//   dropout = 0.05        dropout on the adapter's input (training only)
//   target_modules = ...  comma list of Linear names, matched against the end of the module path
//                         ("q_proj", "attn.c_proj"); "all-linear" = every Linear but lm_head.
//                         Default: q_proj,v_proj (llama), c_attn (gpt2)
//   rslora = false        scale = alpha / sqrt(r)
//   init_from =           start from these adapters: a checkpoint file or directory (its
//                         *.lora.* tensors) or a PEFT LoRA adapter folder (launch/ reads it)
//
// Tensor parallelism (the split follows the base Linear's LinearKind; tp_ops.h names the ops):
//   column base: A replicated [r, in]; B split on dim 0 like the base weight [out/tp, r]:
//                delta = scale * B_local(copy_to_tp(A(dropout(x))))   (copy_to_tp sums A's
//                partial gradients; x's gradient from this path is then already whole)
//   row base:    A split on dim 1 [r, in/tp]; B replicated [out, r]:
//                delta = scale * B(reduce_from_tp(A_local(dropout(x))))  (dropout on this rank's
//                slice of x, from the per-TP-rank RNG stream)
//   replicated base that each rank uses in part (grouped-query k/v, kv_heads % tp != 0): A and B
//                replicated, input and both weights through copy_to_tp so that every gradient is
//                summed over the group, as the base does.
// Parameters are named "<linear>.lora.A" and "<linear>.lora.B" (e.g.
// model.layers.0.self_attn.q_proj.lora.A) and carry ShardSpecs; values are the slices of the full
// tensors a one-rank run draws from named seeds, so TP=k equals TP=1.
#pragma once

#include <string>
#include <vector>

#include "core/layers.h"
#include "core/strategy.h"

namespace shardtune::strategies {

class LoraAdapter final : public core::LinearAdapter, public core::ShardedModule {
 public:
  // `base` owns this adapter (Linear::add_adapter) and outlives it.
  LoraAdapter(core::LinearImpl& base, int64_t r, double scale, double dropout);
  torch::Tensor delta(const torch::Tensor& x) override;
  bool computes_in_bf16() const override { return true; }
  core::ShardSpec shard_spec(const std::string& param_name) const override;
  // Deterministic init: full tensors from named streams of `seed` (names: "<prefix>A", "<prefix>B"),
  // this rank keeps its slice.
  void initialise(const std::string& prefix, uint64_t seed);
  // W_local += scale * B_local A_local (and the adapter stops contributing); unmerge undoes it.
  void merge();
  void unmerge();
  bool merged() const { return merged_; }
  // scale * B A in the base weight's local layout.
  torch::Tensor delta_weight() const;

  torch::Tensor A;  // column/replicated base: [r, in]; row base: [r, in / tp]
  torch::Tensor B;  // column base: [local out, r]; otherwise [out, r]
  double scale;

 private:
  core::LinearImpl& base_;
  core::ShardSpec a_spec_, b_spec_;
  double dropout_;
  bool merged_ = false;
};

class LoraStrategy final : public core::Strategy {
 public:
  explicit LoraStrategy(core::StrategyOptions options);
  std::string name() const override { return "lora"; }
  void apply(core::CausalLMImpl& model) override;
  bool is_added_parameter(const std::string& name) const override;
  void merge(core::CausalLMImpl& model) override;
  void unmerge(core::CausalLMImpl& model);

  int64_t rank() const { return r_; }
  double alpha() const { return alpha_; }
  bool rslora() const { return rslora_; }
  double dropout() const { return dropout_; }
  double scale() const;
  // [strategy.lora] init_from: adapters to start from (a checkpoint or a PEFT adapter folder); the
  // strategy only names it, launch/ reads it (launch/weights.h).
  std::string added_parameters_from() const override { return init_from_; }
  // Names of the adapted Linear modules (after apply), in model order.
  const std::vector<std::string>& adapted() const { return adapted_; }

 private:
  std::vector<LoraAdapter*> adapters(core::CausalLMImpl& model) const;

  int64_t r_;
  double alpha_, dropout_;
  bool rslora_;
  std::vector<std::string> targets_;  // empty = family default
  std::vector<std::string> adapted_;
  std::string init_from_;
};

}  // namespace shardtune::strategies
