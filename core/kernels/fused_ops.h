// Fused CPU operators for the llama training step. LibTorch 1.13 runs each of these as several
// elementwise passes and allocations (docs/benchmarks-profile.md measures how many); here each is
// one or two passes over its data, vectorised (core/kernels/cpu_kernels.h: AVX-512 where the CPU
// has it) and split across threads with at::parallel_for. Every differentiable one is a
// torch::autograd::Function whose backward is fused too, and is checked against the unfused
// LibTorch expression in tests/test_kernels.cpp (forward and gradients, fp32 and bf16).
//
// Inputs must be CPU tensors of dtype float32 or bfloat16 (checked); the last dim must have
// stride 1 (checked); other dims may be strided. Arithmetic and reductions are fp32 whatever the
// storage type. Outputs are new contiguous tensors unless stated otherwise.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "parallel/communicator.h"

namespace shardtune::kernels {

// ---- AdamW -------------------------------------------------------------------------------------
// One AdamW step (core::adamw_update's formula: decoupled decay, bias corrections at step t >= 1)
// over many tensors in one parallel loop: each element of param, grad, exp_avg and exp_avg_sq is
// read once and param/exp_avg/exp_avg_sq written once. All tensors fp32 and contiguous;
// grads[i] may be undefined (that tensor is skipped). decay[i]: whether tensor i gets weight decay.
// The version counters of the updated tensors are bumped, as by an in-place LibTorch op.
struct AdamWHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;
};
void fused_adamw(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                 const std::vector<torch::Tensor>& exp_avgs,
                 const std::vector<torch::Tensor>& exp_avg_sqs, const std::vector<bool>& decay,
                 const AdamWHyper& h);

// The same update of one tensor with weight decay only where decay_mask (bool, like param) is
// true: ZeRO-1's flat shards. Bitwise equal to fused_adamw on the same elements.
void fused_adamw_masked(const torch::Tensor& param, const torch::Tensor& grad,
                        const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq,
                        const torch::Tensor& decay_mask, const AdamWHyper& h);

// ---- Cross-entropy over the vocabulary -------------------------------------------------------
// Per-row loss -log softmax(logits)[target] of logits [..., chunk] (this rank's vocabulary columns
// [offset, offset + length); columns past `length` are padding and ignored) against global target
// ids [...] (int64; -100 = ignored, loss 0, no gradient). Returns [...] fp32. `tp` null (or a group
// of one) means the whole vocabulary is here. Under TP, two all-reduces per call over `tp` (max of
// the row maxima, then the sum of [rescaled sum-exp, target logit] per row), as
// core::causal_lm_loss's vocab-parallel form; the backward communicates nothing.
// Forward: one pass over the logits (row max and sum of exponentials while the row is in cache);
// backward: one pass writing softmax - one-hot, scaled by the incoming gradient, in the logits'
// dtype. Nothing of the size of the logits is saved beyond the logits themselves.
torch::Tensor fused_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets,
                                  int64_t offset, int64_t length,
                                  parallel::Communicator* tp = nullptr);

// Targets for next-token prediction without copying the logits: [B, T] labels -> [B, T] int64
// where position t holds labels[t + 1] and the last position is -100. Row t of the logits then
// predicts its own target (fused_cross_entropy over all T positions equals the loss over the
// T - 1 shifted positions).
torch::Tensor next_token_targets(const torch::Tensor& labels);

// ---- RMSNorm ---------------------------------------------------------------------------------
// y = weight * (x * rsqrt(mean(x^2, -1) + eps)) over the last dim; x [..., n] fp32 or bf16,
// weight [n] fp32 or bf16 (cast to fp32 inside). Output in `out_dtype` (default x's dtype; an fp32
// x may be normalised straight into bf16, the bf16 path's fp32 residual stream); gradients for x
// (x's dtype) and weight (weight's dtype, accumulated in fp32).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps,
                       c10::optional<torch::ScalarType> out_dtype = c10::nullopt);

// ---- SwiGLU ------------------------------------------------------------------------------------
// silu(gate) * up, elementwise; gate and up of equal shape and dtype.
torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up);

// ---- Rotary embedding --------------------------------------------------------------------------
// Hugging Face's rotate-half RoPE: x [B, H, T, d] (any strides with the last one 1, e.g. the
// transposed view of a projection), cos/sin [B, 1, T, d] or [T, d] (fp32 or x's dtype; not
// differentiated). Returns a contiguous [B, H, T, d] in x's dtype.
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos,
                           const torch::Tensor& sin);

// ---- bf16 compute with fp32 master weights ---------------------------------------------------------
// y = x W^T (+ b) in bf16 for x [..., in] bf16 and fp32 (master) W [out, in], b [out]: the bf16
// copy of W is made by a vectorised rounding kernel (round to nearest even, as Tensor::to), the
// GEMMs run in bf16 (oneDNN), and the weight gradient is returned in fp32 (exactly the bf16 GEMM's
// result widened, as autograd's cast node would produce, without LibTorch's slower conversion).
// Results equal F::linear(x, W.to(bf16), b.to(bf16)) bitwise, gradients included.
// `cache`: reuse the bf16 copy of W while W is unchanged (same storage and version counter, i.e.
// no optimizer step in between; writers that bypass LibTorch's in-place ops must bump the version,
// as fused_adamw does; core::TrainingStep also clears the cache after each update): micro-batches of one step cast each weight once. The cache holds
// one bf16 copy per weight used (half the weights' fp32 size); clear_bf16_weight_cache() drops it.
torch::Tensor linear_bf16(const torch::Tensor& x, const torch::Tensor& weight,
                          const torch::Tensor& bias = {}, bool cache = false);
void clear_bf16_weight_cache();
// fp32 -> bf16 (round to nearest even) and bf16 -> fp32 of whole tensors, parallel and vectorised.
torch::Tensor to_bf16(const torch::Tensor& x);
torch::Tensor to_f32(const torch::Tensor& x);

// ---- fp32 GEMM through oneDNN -----------------------------------------------------------------
// LibTorch 1.13 runs fp32 matrix products on the BLAS it was built with (OpenBLAS on Debian), whose
// kernel choice follows the environment (OPENBLAS_CORETYPE=Haswell halves the GEMM rate on an
// AVX-512 machine: docs/benchmarks.md); oneDNN's sgemm, which LibTorch itself links, JIT-compiles
// for the CPU it runs on and measured 1.4-2.9x OpenBLAS's rate with that variable and 0.86-2.1x
// without it at the shapes of a training step (docs/benchmarks-profile.md).
// set_onednn_fp32_gemm(true) (process-wide; core::TrainingStep sets it from [train] kernels =
// fused) routes core::mixed_linear's fp32 products and causal_attention's here; it stays off when
// no oneDNN sgemm symbol can be found (a LibTorch with oneDNN linked in statically), and
// everything then uses torch::mm.
// Results agree with torch::mm to fp32 rounding (sums run in another order), not bitwise.
bool onednn_sgemm_available();
void set_onednn_fp32_gemm(bool on);
bool onednn_fp32_gemm();
// a [m, k] @ b [k, n] -> a new contiguous [m, n]; fp32 CPU tensors, either operand may be a
// transposed view (no copy). torch::mm when oneDNN is not available (whatever the switch says:
// the switch selects callers, not this function).
torch::Tensor mm_f32(const torch::Tensor& a, const torch::Tensor& b);
// a [..., m, k] @ b [..., k, n] -> a new contiguous [..., m, n] (the same leading dims, any strides
// over them, 0 included; the last two as for mm_f32): one oneDNN sgemm per matrix, the matrices
// spread over LibTorch's threads. torch::matmul when oneDNN is not available.
torch::Tensor bmm_f32(const torch::Tensor& a, const torch::Tensor& b);
// bmm_f32 with its backward (da = g b^T, db = a^T g, each only when needed).
torch::Tensor matmul_f32(const torch::Tensor& a, const torch::Tensor& b);
// y = x W^T + b over the last dim of x (fp32), with its backward (dx = g W, dW = g^T x, db = sum g)
// on mm_f32; gradients of inputs that need none are not computed.
torch::Tensor linear_f32(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias = {});

// ---- Causal attention softmax ------------------------------------------------------------------
// In place on scores [B, H, T, P + T] (fp32 or bf16, contiguous; the first P keys are a prefix
// every query sees, then T causal keys; bf16: fp32 math, probabilities rounded once to bf16): scores <- softmax(scale * scores + causal mask), the mask never built.
// Query i sees keys [0, P + i]. Returns `scores` (the same tensor, marked dirty for autograd).
// Use only when no key is padding.
torch::Tensor causal_softmax_(torch::Tensor scores, double scale, int64_t prefix);

// softmax(q k^T / sqrt(d) + causal mask) v for q [B, H, T, d], k/v [B, H, P + T, d], no padding:
// two batched GEMMs around causal_softmax_ (on matmul_f32 in fp32 when the oneDNN switch is on).
// Equals core::attention with a causal bias (which, in bf16, also computes the softmax in fp32 and
// rounds the probabilities to bf16).
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, int64_t prefix);

}  // namespace shardtune::kernels
