// bf16 compute for fp32 weights (fused_ops.h "bf16"): conversions, a cache of each weight's bf16
// copy keyed on its identity and version, and the linear layer that GEMMs on that copy.
#include <ATen/Parallel.h>

#include <mutex>
#include <unordered_map>

#include "core/kernels/cpu_kernels.h"
#include "core/kernels/fused_common.h"
#include "core/kernels/fused_ops.h"

namespace shardtune::kernels {

namespace {

using detail::bf16_ptr;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Keyed by the weight's TensorImpl; the entry holds a weak reference to that impl so that a freed
// weight whose address is reused by another tensor is never mistaken for it, and the storage's data
// pointer and the version counter (bumped by every in-place update) so that a changed weight is
// re-cast.
struct WeightCacheEntry {
  c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl> owner;
  const void* data;
  uint32_t version;
  torch::Tensor bf16;
};
std::mutex g_weight_cache_mu;
std::unordered_map<const c10::TensorImpl*, WeightCacheEntry> g_weight_cache;

torch::Tensor cached_bf16(const torch::Tensor& w, bool cache) {
  if (!cache) return to_bf16(w.detach());
  const uint32_t version = w._version();
  std::lock_guard<std::mutex> lock(g_weight_cache_mu);
  auto it = g_weight_cache.find(w.unsafeGetTensorImpl());
  if (it != g_weight_cache.end() && !it->second.owner.expired() &&
      it->second.data == w.data_ptr() && it->second.version == version &&
      it->second.bf16.sizes() == w.sizes()) {
    return it->second.bf16;
  }
  for (auto e = g_weight_cache.begin(); e != g_weight_cache.end();) {  // drop dead weights
    e = e->second.owner.expired() ? g_weight_cache.erase(e) : std::next(e);
  }
  auto w16 = to_bf16(w.detach());
  g_weight_cache.erase(w.unsafeGetTensorImpl());
  g_weight_cache.emplace(
      w.unsafeGetTensorImpl(),
      WeightCacheEntry{
          c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>(w.getIntrusivePtr()),
          w.data_ptr(), version, w16});
  return w16;
}

struct LinearBf16Fn : torch::autograd::Function<LinearBf16Fn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight,
                               const c10::optional<torch::Tensor>& bias_opt, bool cache) {
    const torch::Tensor bias = bias_opt.value_or(torch::Tensor());
    TORCH_CHECK(x.scalar_type() == torch::kBFloat16, "linear_bf16: bf16 input expected, got ",
                x.scalar_type());
    TORCH_CHECK(weight.scalar_type() == torch::kFloat && weight.dim() == 2,
                "linear_bf16: fp32 [out, in] weight expected");
    torch::Tensor w16;
    {
      torch::NoGradGuard no_grad;
      w16 = cached_bf16(weight, cache);
    }
    auto b16 = bias.defined() ? to_bf16(bias.detach()) : torch::Tensor();
    auto y = torch::nn::functional::linear(x, w16, b16);
    ctx->save_for_backward({x, w16});
    ctx->saved_data["has_bias"] = bias.defined();
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& w16 = saved[1];
    auto g = grad[0].to(torch::kBFloat16);
    const int64_t out = w16.size(0), in = w16.size(1);
    auto g2 = g.reshape({-1, out});
    // Frozen weights (LoRA, P-tuning backbones) skip their GEMM.
    torch::Tensor dx, dw, db;
    if (ctx->needs_input_grad(0)) dx = torch::mm(g2, w16).view(x.sizes());
    if (ctx->needs_input_grad(1)) dw = to_f32(torch::mm(g2.t(), x.reshape({-1, in})));
    if (ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)) db = to_f32(g2.sum(0));
    return {dx, dw, db, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor to_bf16(const torch::Tensor& x) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat && x.device().is_cpu(), "to_bf16: fp32 CPU input");
  auto c = x.contiguous();
  auto y = torch::empty(c.sizes(), c.options().dtype(torch::kBFloat16));
  at::parallel_for(0, c.numel(), 1 << 16, [&](int64_t b, int64_t e) {
    f32_to_bf16(c.data_ptr<float>() + b, e - b, bf16_ptr(y) + b);
  });
  return y;
}

torch::Tensor to_f32(const torch::Tensor& x) {
  TORCH_CHECK(x.scalar_type() == torch::kBFloat16 && x.device().is_cpu(), "to_f32: bf16 CPU input");
  auto c = x.contiguous();
  auto y = torch::empty(c.sizes(), c.options().dtype(torch::kFloat));
  at::parallel_for(0, c.numel(), 1 << 16, [&](int64_t b, int64_t e) {
    bf16_to_f32(bf16_ptr(c) + b, e - b, y.data_ptr<float>() + b);
  });
  return y;
}

torch::Tensor linear_bf16(const torch::Tensor& x, const torch::Tensor& weight,
                          const torch::Tensor& bias, bool cache) {
  // An undefined bias travels as nullopt: autograd's Function takes every Tensor argument for a
  // variable, and an undefined one has no device.
  return LinearBf16Fn::apply(
      x, weight, bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt, cache);
}

void clear_bf16_weight_cache() {
  std::lock_guard<std::mutex> lock(g_weight_cache_mu);
  g_weight_cache.clear();
}

}  // namespace shardtune::kernels
