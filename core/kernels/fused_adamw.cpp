// Multi-tensor AdamW on the CPU element loops of cpu_kernels (fused_ops.h "AdamW").
#include <ATen/Parallel.h>

#include <cmath>

#include "core/kernels/cpu_kernels.h"
#include "core/kernels/fused_ops.h"

namespace shardtune::kernels {

namespace {

// The per-step scalars of core::adamw_update's formula, bias corrections folded in (computed in
// double, applied in float).
AdamWScalars scalars_of(const AdamWHyper& h) {
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  return AdamWScalars{static_cast<float>(h.beta1), static_cast<float>(h.beta2),
                      static_cast<float>(h.eps), static_cast<float>(1.0 - h.lr * h.weight_decay),
                      static_cast<float>(h.lr / bc1), static_cast<float>(1.0 / std::sqrt(bc2))};
}

}  // namespace

void fused_adamw(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                 const std::vector<torch::Tensor>& exp_avgs,
                 const std::vector<torch::Tensor>& exp_avg_sqs, const std::vector<bool>& decay,
                 const AdamWHyper& h) {
  const size_t n = params.size();
  TORCH_CHECK(grads.size() == n && exp_avgs.size() == n && exp_avg_sqs.size() == n &&
                  decay.size() == n,
              "fused_adamw: lists of different lengths");
  TORCH_CHECK(h.step >= 1, "fused_adamw: step must be >= 1");
  // Work items of at most kChunk elements over all tensors, so that one big tensor and many small
  // ones both spread over the threads.
  constexpr int64_t kChunk = 1 << 16;
  struct Item {
    size_t tensor;
    int64_t begin, len;
  };
  std::vector<Item> items;
  for (size_t i = 0; i < n; ++i) {
    if (!grads[i].defined()) continue;
    for (const auto* t : {&params[i], &grads[i], &exp_avgs[i], &exp_avg_sqs[i]}) {
      TORCH_CHECK(t->scalar_type() == torch::kFloat && t->is_contiguous() && t->device().is_cpu(),
                  "fused_adamw: tensor ", i, " must be a contiguous fp32 CPU tensor");
      TORCH_CHECK(t->numel() == params[i].numel(), "fused_adamw: tensor ", i, " sizes differ");
    }
    for (int64_t b = 0; b < params[i].numel(); b += kChunk) {
      items.push_back({i, b, std::min(kChunk, params[i].numel() - b)});
    }
  }
  const AdamWScalars with_decay = scalars_of(h);
  AdamWScalars no_decay = with_decay;
  no_decay.decay = 1.0f;
  at::parallel_for(0, static_cast<int64_t>(items.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const Item& it = items[static_cast<size_t>(k)];
      const size_t i = it.tensor;
      adamw_f32(params[i].data_ptr<float>() + it.begin, grads[i].data_ptr<float>() + it.begin,
                exp_avgs[i].data_ptr<float>() + it.begin,
                exp_avg_sqs[i].data_ptr<float>() + it.begin, it.len,
                decay[i] ? with_decay : no_decay);
    }
  });
  // Written through raw pointers: bump the version counters as an in-place op would, so that
  // whatever keys on them (linear_bf16's weight cache, autograd's saved-tensor checks) sees the
  // change.
  for (size_t i = 0; i < n; ++i) {
    if (!grads[i].defined()) continue;
    for (const auto* t : {&params[i], &exp_avgs[i], &exp_avg_sqs[i]}) {
      torch::autograd::impl::bump_version(*t);
    }
  }
}

void fused_adamw_masked(const torch::Tensor& param, const torch::Tensor& grad,
                        const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq,
                        const torch::Tensor& decay_mask, const AdamWHyper& h) {
  for (const auto* t : {&param, &grad, &exp_avg, &exp_avg_sq}) {
    TORCH_CHECK(t->scalar_type() == torch::kFloat && t->is_contiguous() && t->device().is_cpu() &&
                    t->numel() == param.numel(),
                "fused_adamw_masked: contiguous fp32 CPU tensors of equal size expected");
  }
  TORCH_CHECK(decay_mask.scalar_type() == torch::kBool && decay_mask.is_contiguous() &&
                  decay_mask.numel() == param.numel(),
              "fused_adamw_masked: a contiguous bool mask like the parameter expected");
  TORCH_CHECK(h.step >= 1, "fused_adamw_masked: step must be >= 1");
  const AdamWScalars s = scalars_of(h);
  const auto* mask = reinterpret_cast<const uint8_t*>(decay_mask.data_ptr<bool>());
  at::parallel_for(0, param.numel(), 1 << 16, [&](int64_t b, int64_t e) {
    adamw_masked_f32(param.data_ptr<float>() + b, grad.data_ptr<float>() + b,
                     exp_avg.data_ptr<float>() + b, exp_avg_sq.data_ptr<float>() + b, e - b, s,
                     mask + b);
  });
  // As fused_adamw. A ZeRO-1 shard is a view of its bucket's flat buffer, which the parameters
  // view too: one shared counter, so every parameter of the bucket reads as changed.
  for (const auto* t : {&param, &exp_avg, &exp_avg_sq}) torch::autograd::impl::bump_version(*t);
}

}  // namespace shardtune::kernels
