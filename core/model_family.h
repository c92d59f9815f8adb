// What the model families (core/llama.cpp, core/gpt2.cpp) share, internal to core/: the attention
// core, the per-block recomputation wrapper, and each family's constructor for build_model.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <vector>

#include "core/model.h"

namespace shardtune::core::detail {

// Attention core shared by both families: q [B, h_local, T, d], k/v [B, kv_held, T, d] (after
// rotary). Adds the P-tuning v2 prefix, maps this rank's q heads to their kv heads (grouped-query
// attention, replicated kv under TP), applies dropout on the probabilities from the per-TP-rank
// RNG stream (the heads are sharded), returns [B, T, h_local * d].
// An undefined `bias` means "causal, no padding, no dropout": the fused kernel
// (kernels::causal_attention) then applies the mask without building it.
torch::Tensor attend(const CausalLMImpl& model, int64_t layer, torch::Tensor q, torch::Tensor k,
                     torch::Tensor v, torch::Tensor bias, double dropout, bool training);

// The model's trainable parameters when blocks are recomputed in this pass (recompute() needs
// them to record a block whose input needs no gradient but whose parameters, or a prefix
// encoder's, do), else empty.
std::vector<torch::Tensor> recompute_params(const CausalLMImpl& model);

// Runs fn(x) directly, or (compute().recompute, training with grad) without keeping the
// block's activations, recomputed in backward with the same RNG state (core/recompute.h). `fn`
// runs again in backward, after forward returned: it must own (capture by value) what it reads.
torch::Tensor run_block(const CausalLMImpl& model, const std::vector<torch::Tensor>& params,
                        std::function<torch::Tensor(const torch::Tensor&)> fn,
                        const torch::Tensor& x);

// Whether attention can take the fused causal kernel: fused kernels on, no padding key, one
// document per row (no packing), and no dropout on the probabilities in this pass.
bool fused_causal_ok(const CausalLMImpl& model, const torch::Tensor& attention_mask,
                     bool training);

// The families, uninitialised (build_model initialises the parameters).
std::shared_ptr<CausalLMImpl> make_llama(const ModelConfig& config, parallel::TpGroup tp);
std::shared_ptr<CausalLMImpl> make_gpt2(const ModelConfig& config, parallel::TpGroup tp);

}  // namespace shardtune::core::detail
