// The parts of a causal LM both families share (core/model_family.h).
#include "core/kernels/fused_ops.h"
#include "core/layers.h"
#include "core/model_family.h"
#include "core/recompute.h"

namespace shardtune::core::detail {

torch::Tensor attend(const CausalLMImpl& model, int64_t layer, torch::Tensor q, torch::Tensor k,
                     torch::Tensor v, torch::Tensor bias, double dropout, bool training) {
  const int64_t b = q.size(0), t = q.size(2);
  int64_t prefix = 0;
  if (auto* provider = model.prefix_provider()) {
    auto [pk, pv] = provider->prefix(layer, b);
    k = torch::cat({pk.to(k.scalar_type()), k}, 2);
    v = torch::cat({pv.to(v.scalar_type()), v}, 2);
    prefix = pk.size(2);
    // Every query sees every prefix position.
    if (bias.defined()) {
      bias = torch::cat({torch::zeros({b, 1, t, prefix}, bias.options()), bias}, -1);
    }
  }
  const auto& c = model.config();
  const int64_t h_local = q.size(1);
  const int64_t rep = c.num_heads / c.kv_heads();  // q heads per kv head
  if (model.kv_heads_split()) {
    // This rank holds kv heads [r * kv/tp, ...) serving exactly its q heads [r * h/tp, ...).
    if (rep > 1) {
      k = k.repeat_interleave(rep, 1);
      v = v.repeat_interleave(rep, 1);
    }
  } else {
    // kv replicated: pick the kv head of each of this rank's q heads.
    const int64_t first = model.tp().rank() * h_local;
    auto idx = torch::div(torch::arange(first, first + h_local, torch::kLong), rep, "floor");
    k = k.index_select(1, idx);
    v = v.index_select(1, idx);
  }
  torch::Tensor out;
  if (!bias.defined()) {
    out = kernels::causal_attention(q, k, v, prefix);
  } else if (dropout > 0.0 && training && model.tp().active()) {
    auto fork = parallel::rng_tracker().fork();
    out = attention(q, k, v, bias, dropout, training);
  } else {
    out = attention(q, k, v, bias, dropout, training);
  }
  return out.transpose(1, 2).reshape({b, t, -1});
}

std::vector<torch::Tensor> recompute_params(const CausalLMImpl& model) {
  std::vector<torch::Tensor> out;
  if (!model.compute().recompute || !model.is_training() || !torch::GradMode::is_enabled()) {
    return out;
  }
  for (const auto& p : model.parameters()) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

torch::Tensor run_block(const CausalLMImpl& model, const std::vector<torch::Tensor>& params,
                        std::function<torch::Tensor(const torch::Tensor&)> fn,
                        const torch::Tensor& x) {
  if (!model.compute().recompute || !model.is_training() || !torch::GradMode::is_enabled()) {
    return fn(x);
  }
  return recompute([fn](const std::vector<torch::Tensor>& in) { return fn(in[0]); }, {x}, params);
}

bool fused_causal_ok(const CausalLMImpl& model, const torch::Tensor& attention_mask,
                     bool training) {
  if (!model.compute().fused) return false;
  if (model.config().dropout > 0.0 && training) return false;
  // One document per row and no padding: every mask value is 1 (packed rows hold 1, 2, ...).
  return !attention_mask.defined() || attention_mask.eq(1).all().item<bool>();
}

}  // namespace shardtune::core::detail
