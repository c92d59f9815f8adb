// Row kernels of the fused CPU operators (core/kernels/fused_ops.h): plain loops over raw
// pointers, no LibTorch, so that their translation unit can be compiled for several ISAs.
// Every kernel here is built twice (GCC target_clones: x86-64-v4, i.e. AVX-512 F/BW/DQ/VL, and
// the baseline x86-64) and the loader picks the clone the CPU supports, so the binary runs on any
// x86-64 while using AVX-512 where present. Callers (fused_ops.cpp) split work across threads
// with at::parallel_for; each call here works on one contiguous range and is single-threaded.
//
// Element types: float, and bfloat16 stored as uint16_t (the upper half of an IEEE float,
// LibTorch's c10::BFloat16 layout). Whatever the storage type, arithmetic and accumulation are
// fp32 (sums in fp32; the cross-entropy's row sums too), and bf16 outputs are rounded to nearest
// even, as c10::BFloat16 does.
#pragma once

#include <cstdint>

namespace shardtune::kernels {

using bf16_t = uint16_t;

// ---- AdamW: one pass over param, grad, exp_avg, exp_avg_sq (all fp32, n elements) ----------
//   p *= decay;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
// decay = 1 - lr * weight_decay (1 for tensors without decay), step_size = lr / (1 - b1^t),
// inv_sqrt_bc2 = 1 / sqrt(1 - b2^t): core::adamw_update's formula with the same float scalars.
// Not bitwise its result: LibTorch's vectorised add/addcmul/addcdiv group the products
// differently, so single elements may differ by an ulp (tests/test_kernels.cpp: 1e-6 relative
// after several steps; tests/test_model.cpp: within 2 ulps of the closed form).
struct AdamWScalars {
  float beta1, beta2, eps, decay, step_size, inv_sqrt_bc2;
};
void adamw_f32(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars& s);
// As adamw_f32 with decay applied only where decay_mask[i] != 0 (ZeRO-1 shards that span
// matrices and vectors). Bitwise equal to adamw_f32 with s.decay or with decay 1 per element:
// no operation is fused or reordered differently (the file is compiled without FP contraction).
void adamw_masked_f32(float* p, const float* g, float* m, float* v, int64_t n,
                      const AdamWScalars& s, const uint8_t* decay_mask);

// ---- Cross-entropy over one rank's vocabulary columns ---------------------------------------
// Row statistics of x[0..n): *row_max = max_j x[j], *sum_exp = sum_j exp(x[j] - *row_max).
// n == 0 gives (-FLT_MAX, 0).
void row_max_sumexp_f32(const float* x, int64_t n, float* row_max, float* sum_exp);
void row_max_sumexp_bf16(const bf16_t* x, int64_t n, float* row_max, float* sum_exp);
// Gradient of one row: out[j] = scale * exp(x[j] - lse) for every j, then out[target] -= scale
// when 0 <= target < n (the target is on this rank). lse = log-sum-exp over the whole vocabulary.
void ce_row_grad_f32(const float* x, int64_t n, float lse, int64_t target, float scale,
                     float* out);
void ce_row_grad_bf16(const bf16_t* x, int64_t n, float lse, int64_t target, float scale,
                      bf16_t* out);

// ---- RMSNorm over rows of length n ---------------------------------------------------------
// y = w * (x * rstd), rstd = 1 / sqrt(mean(x^2) + eps); returns rstd (for the backward).
float rmsnorm_row_f32(const float* x, const float* w, int64_t n, float eps, float* y);
float rmsnorm_row_bf16(const bf16_t* x, const float* w, int64_t n, float eps, bf16_t* y);
// Backward of one row: dx = rstd * (w dy - x rstd^2 mean(w dy x)); dw_acc += dy * x * rstd
// (dw_acc: an fp32 accumulator of length n owned by the calling thread).
void rmsnorm_row_backward_f32(const float* x, const float* w, const float* dy, int64_t n,
                              float rstd, float* dx, float* dw_acc);
void rmsnorm_row_backward_bf16(const bf16_t* x, const float* w, const bf16_t* dy, int64_t n,
                               float rstd, bf16_t* dx, float* dw_acc);
// Mixed: an fp32 residual stream in, bf16 out (bf16 compute after the norm); dx in fp32.
float rmsnorm_row_f32_to_bf16(const float* x, const float* w, int64_t n, float eps, bf16_t* y);
void rmsnorm_row_backward_f32_bf16(const float* x, const float* w, const bf16_t* dy, int64_t n,
                                   float rstd, float* dx, float* dw_acc);

// ---- SwiGLU: y = silu(g) * u over n elements ------------------------------------------------
void swiglu_f32(const float* g, const float* u, int64_t n, float* y);
void swiglu_bf16(const bf16_t* g, const bf16_t* u, int64_t n, bf16_t* y);
// dg = dy * u * s * (1 + g (1 - s)), du = dy * g * s, with s = sigmoid(g).
void swiglu_backward_f32(const float* g, const float* u, const float* dy, int64_t n, float* dg,
                         float* du);
void swiglu_backward_bf16(const bf16_t* g, const bf16_t* u, const bf16_t* dy, int64_t n,
                          bf16_t* dg, bf16_t* du);

// ---- Rotary embedding ("rotate half") on one row of head_dim d (even) ------------------------
// out = x * cos + rotate_half(x) * sin, rotate_half(x) = [-x[d/2:], x[:d/2]]. cos/sin: fp32 rows.
// backward (same call with `sign` = -1): dx = dy * cos + rotate_half^T(dy * sin), where
// rotate_half^T(z) = [z[d/2:], -z[:d/2]]; i.e. the forward with sin negated.
void rope_row_f32(const float* x, const float* cos, const float* sin, int64_t d, float sign,
                  float* out);
void rope_row_bf16(const bf16_t* x, const float* cos, const float* sin, int64_t d, float sign,
                   bf16_t* out);

// ---- Causal softmax, in place, on one row of scores ----------------------------------------
// x[0..n): scores of one query; the first `visible` entries are kept (visible >= 1), the rest
// are masked (their probability is 0). x <- softmax(scale * x) over the visible entries.
void causal_softmax_row_f32(float* x, int64_t n, int64_t visible, float scale);
void causal_softmax_row_bf16(bf16_t* x, int64_t n, int64_t visible, float scale);
// Backward: dx = scale * p * (dy - sum(dy * p)) (masked entries give 0).
void causal_softmax_row_backward_f32(const float* p, const float* dy, float* dx, int64_t n,
                                     int64_t visible, float scale);
void causal_softmax_row_backward_bf16(const bf16_t* p, const bf16_t* dy, bf16_t* dx, int64_t n,
                                      int64_t visible, float scale);

// bf16 <-> fp32 conversions (round to nearest even; NaN stays NaN).
void bf16_to_f32(const bf16_t* x, int64_t n, float* y);
void f32_to_bf16(const float* x, int64_t n, bf16_t* y);

}  // namespace shardtune::kernels
