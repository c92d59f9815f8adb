// Fused kernels (core/kernels/fused_ops.h) against the unfused LibTorch expressions they replace:
// outputs and every gradient, fp32 and bf16.
//
// Tolerances. fp32: the fused kernels compute the same quantities in a different order (16-lane
// partial sums, exp from a polynomial accurate to ~1 ulp instead of Sleef's), so results differ
// from LibTorch's by a few ulp per element: compared within 2e-6 relative to the tensor's largest
// value (AdamW, which is elementwise with no reduction: 1e-6). bf16: inputs are bf16, both the
// fused kernel and the reference compute in fp32 from the same bf16 values, and each rounds its
// result to bf16 once; the reference is evaluated in fp32 and rounded at the end, so the two may
// differ by one bf16 rounding step (2^-8 relative): 1e-2 relative to the largest value.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include <c10/core/CPUAllocator.h>

#include "core/kernels/caching_allocator.h"
#include "core/kernels/fused_ops.h"
#include "core/layers.h"
#include "core/loss.h"
#include "core/optimizer.h"
#include "core/recompute.h"
#include "parallel/tp_ops.h"

using namespace shardtune;

namespace {

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double rel,
                  const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  auto af = a.to(torch::kDouble), bf = b.to(torch::kDouble);
  const double err = (af - bf).abs().max().item<double>();
  const double scale = bf.abs().max().item<double>();
  EXPECT_LE(err, rel * scale + 1e-12) << what << ": max error " << err << " (scale " << scale
                                       << ")";
}

torch::Tensor randn(std::vector<int64_t> shape, uint64_t seed, double std = 1.0) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::normal(0.0, std, shape, gen, torch::TensorOptions().dtype(torch::kFloat));
}

// Reference RMSNorm: Hugging Face's LlamaRMSNorm (as core::RMSNormImpl computes it).
torch::Tensor rms_ref(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  auto xf = x.to(torch::kFloat);
  return w.to(torch::kFloat) * (xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps));
}

}  // namespace

// ---- AdamW --------------------------------------------------------------------------------------

TEST(FusedAdamW, MatchesAdamwUpdateOverSeveralStepsWithAndWithoutDecay) {
  core::AdamWOptions o;
  o.beta1 = 0.9;
  o.beta2 = 0.95;
  o.eps = 1e-8;
  o.weight_decay = 0.1;
  // A large tensor (several parallel work items), a small one, a vector without decay, and one
  // without a gradient (skipped).
  std::vector<std::vector<int64_t>> shapes = {{300, 700}, {7, 3}, {513}, {4, 4}};
  std::vector<torch::Tensor> p_ref, m_ref, v_ref, p, m, v, g;
  std::vector<bool> decay;
  for (size_t i = 0; i < shapes.size(); ++i) {
    p_ref.push_back(randn(shapes[i], 10 + i));
    m_ref.push_back(torch::zeros(shapes[i]));
    v_ref.push_back(torch::zeros(shapes[i]));
    p.push_back(p_ref.back().clone());
    m.push_back(torch::zeros(shapes[i]));
    v.push_back(torch::zeros(shapes[i]));
    decay.push_back(shapes[i].size() >= 2);
  }
  for (int64_t step = 1; step <= 5; ++step) {
    g.clear();
    for (size_t i = 0; i < shapes.size(); ++i) {
      g.push_back(i == 3 ? torch::Tensor() : randn(shapes[i], 100 * step + i, 1e-2));
    }
    const double lr = 1e-3 * step;
    for (size_t i = 0; i < shapes.size(); ++i) {
      if (!g[i].defined()) continue;
      core::AdamWOptions oi = o;
      if (!decay[i]) oi.weight_decay = 0.0;
      core::adamw_update(p_ref[i], g[i], m_ref[i], v_ref[i], step, lr, oi, {});
    }
    kernels::AdamWHyper h{lr, o.beta1, o.beta2, o.eps, o.weight_decay, step};
    kernels::fused_adamw(p, g, m, v, decay, h);
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    expect_close(p[i], p_ref[i], 1e-6, "param " + std::to_string(i));
    expect_close(m[i], m_ref[i], 1e-6, "exp_avg " + std::to_string(i));
    expect_close(v[i], v_ref[i], 1e-6, "exp_avg_sq " + std::to_string(i));
  }
  EXPECT_TRUE(torch::equal(p[3], p_ref[3]));  // no gradient: untouched
}

TEST(FusedAdamW, MaskedFormIsBitwiseThePerTensorForm) {
  // A flat shard spanning a matrix (decayed) and a vector (not), as ZeRO-1 holds it.
  auto a = randn({40, 30}, 60), b = randn({77}, 61);
  auto ga = randn({40, 30}, 62, 1e-2), gb = randn({77}, 63, 1e-2);
  std::vector<torch::Tensor> p{a.clone(), b.clone()}, m{torch::zeros({40, 30}), torch::zeros({77})},
      v{torch::zeros({40, 30}), torch::zeros({77})};
  auto flat = torch::cat({a.reshape(-1), b});
  auto gflat = torch::cat({ga.reshape(-1), gb});
  auto mflat = torch::zeros_like(flat), vflat = torch::zeros_like(flat);
  auto mask = torch::cat({torch::ones({1200}, torch::kBool), torch::zeros({77}, torch::kBool)});
  for (int64_t step = 1; step <= 3; ++step) {
    kernels::AdamWHyper h{1e-2, 0.9, 0.95, 1e-8, 0.1, step};
    kernels::fused_adamw(p, {ga, gb}, m, v, {true, false}, h);
    kernels::fused_adamw_masked(flat, gflat, mflat, vflat, mask, h);
  }
  EXPECT_TRUE(torch::equal(flat, torch::cat({p[0].reshape(-1), p[1]})));
  EXPECT_TRUE(torch::equal(vflat, torch::cat({v[0].reshape(-1), v[1]})));
  EXPECT_FALSE(torch::equal(p[0], a));  // it did update
}

TEST(FusedAdamW, RejectsNonContiguousAndMismatchedTensors) {
  auto p = torch::zeros({4, 4});
  auto g = torch::zeros({4, 4}).t();
  std::vector<torch::Tensor> ps{p}, ms{torch::zeros({4, 4})}, vs{torch::zeros({4, 4})};
  EXPECT_THROW(kernels::fused_adamw(ps, {g}, ms, vs, {true}, {}), c10::Error);
  EXPECT_THROW(kernels::fused_adamw(ps, {torch::zeros({3})}, ms, vs, {true}, {}), c10::Error);
}

// ---- cross-entropy --------------------------------------------------------------------------------

TEST(FusedCrossEntropy, LossAndGradientMatchLibTorchFp32) {
  const int64_t B = 3, T = 7, V = 1000;  // V not a multiple of the 16 lanes
  auto logits = (randn({B, T, V}, 1) * 4).requires_grad_();
  auto labels = torch::randint(0, V, {B, T}, at::detail::createCPUGenerator(2), torch::kLong);
  labels[0][3] = -100;
  labels[2][0] = -100;  // never a target (position 0), fine either way
  // Reference: core::causal_lm_loss (shift, cross_entropy with ignore_index, sum).
  auto ref = core::causal_lm_loss(logits, labels);
  auto g_ref = torch::autograd::grad({ref.sum * 0.37}, {logits})[0];

  auto logits2 = logits.detach().clone().requires_grad_();
  auto per_row = kernels::fused_cross_entropy(logits2, kernels::next_token_targets(labels), 0, V);
  ASSERT_EQ(per_row.sizes(), (std::vector<int64_t>{B, T}));
  auto sum = per_row.sum();
  expect_close(sum, ref.sum, 2e-6, "loss sum");
  auto g = torch::autograd::grad({sum * 0.37}, {logits2})[0];
  expect_close(g, g_ref, 2e-6, "d logits");
  // Ignored and last positions: loss 0, gradient 0.
  EXPECT_EQ(per_row[0][2].item<float>(), 0.0f);  // predicts labels[0][3] = -100
  EXPECT_EQ(per_row[1][T - 1].item<float>(), 0.0f);
  EXPECT_EQ(g[0][2].abs().sum().item<float>(), 0.0f);
}

TEST(FusedCrossEntropy, PerRowLossMatchesWithExtremeLogits) {
  // Large magnitudes: the max subtraction keeps exp finite.
  auto logits = randn({5, 300}, 3) * 80;
  auto targets = torch::tensor({0, 299, 17, -100, 150}, torch::kLong);
  auto fused = kernels::fused_cross_entropy(logits, targets, 0, 300);
  auto ref = torch::nn::functional::cross_entropy(
      logits, targets,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone).ignore_index(-100));
  expect_close(fused, ref, 2e-6, "per-row loss");
  EXPECT_TRUE(torch::isfinite(fused).all().item<bool>());
}

TEST(FusedCrossEntropy, ShardedVocabularyOnOneRankEqualsTheFullRowPart) {
  // A "rank" holding columns [offset, offset + length) of a padded chunk, with no communicator:
  // the per-row statistics are those of its columns only; here offset 0 and padding columns past
  // `length` must be ignored (filled with garbage on purpose).
  const int64_t V = 130, chunk = 136;
  auto full = randn({4, V}, 4);
  auto padded = torch::empty({4, chunk}).fill_(1e4);
  padded.narrow(1, 0, V).copy_(full);
  auto targets = torch::tensor({5, 129, -100, 64}, torch::kLong);
  auto a = kernels::fused_cross_entropy(padded.requires_grad_(), targets, 0, V);
  auto b = kernels::fused_cross_entropy(full, targets, 0, V);
  expect_close(a, b, 1e-7, "padding ignored");
  auto g = torch::autograd::grad({a.sum()}, {padded})[0];
  EXPECT_EQ(g.narrow(1, V, chunk - V).abs().sum().item<float>(), 0.0f);
}

TEST(FusedCrossEntropy, Bf16LogitsWithinOneRoundingOfFp32) {
  const int64_t V = 512;
  auto logits = (randn({6, V}, 5) * 3).to(torch::kBFloat16);
  auto targets = torch::randint(0, V, {6}, at::detail::createCPUGenerator(6), torch::kLong);
  auto lb = logits.clone().requires_grad_();
  auto loss = kernels::fused_cross_entropy(lb, targets, 0, V);
  EXPECT_EQ(loss.scalar_type(), torch::kFloat);  // accumulated and returned in fp32
  auto lf = logits.to(torch::kFloat).requires_grad_();
  auto ref = torch::nn::functional::cross_entropy(
      lf, targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  expect_close(loss, ref, 2e-6, "bf16 loss (fp32 math on the same bf16 values)");
  auto g = torch::autograd::grad({loss.sum()}, {lb})[0];
  auto g_ref = torch::autograd::grad({ref.sum()}, {lf})[0];
  EXPECT_EQ(g.scalar_type(), torch::kBFloat16);
  expect_close(g, g_ref, 1e-2, "bf16 d logits");
}

// ---- RMSNorm --------------------------------------------------------------------------------------

TEST(FusedRmsNorm, ForwardAndGradientsMatchFp32) {
  auto x = randn({2, 5, 96}, 7).requires_grad_();
  auto w = (1 + 0.1 * randn({96}, 8)).requires_grad_();
  auto y_ref = rms_ref(x, w, 1e-5);
  auto dy = randn({2, 5, 96}, 9);
  auto grads_ref = torch::autograd::grad({y_ref}, {x, w}, {dy});
  auto x2 = x.detach().clone().requires_grad_();
  auto w2 = w.detach().clone().requires_grad_();
  auto y = kernels::rms_norm(x2, w2, 1e-5);
  expect_close(y, y_ref, 2e-6, "y");
  auto grads = torch::autograd::grad({y}, {x2, w2}, {dy});
  expect_close(grads[0], grads_ref[0], 2e-6, "dx");
  expect_close(grads[1], grads_ref[1], 2e-6, "dw");
}

TEST(FusedRmsNorm, StridedInputAndBf16) {
  // A non-contiguous input (rows of a transposed tensor whose last dim is still contiguous).
  auto base = randn({6, 4, 64}, 10);
  auto x = base.transpose(0, 1);  // [4, 6, 64], last dim stride 1
  auto w = 1 + 0.1 * randn({64}, 11);
  expect_close(kernels::rms_norm(x, w, 1e-6), rms_ref(x, w, 1e-6), 2e-6, "strided");
  auto xb = randn({3, 128}, 12).to(torch::kBFloat16).requires_grad_();
  auto y = kernels::rms_norm(xb, w.narrow(0, 0, 64).repeat({2}), 1e-5);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  expect_close(y, rms_ref(xb.detach(), w.repeat({2}), 1e-5), 1e-2, "bf16 y");
  auto dx = torch::autograd::grad({y.to(torch::kFloat).sum()}, {xb})[0];
  auto xr = xb.detach().to(torch::kFloat).requires_grad_();
  auto dx_ref = torch::autograd::grad({rms_ref(xr, w.repeat({2}), 1e-5).sum()}, {xr})[0];
  expect_close(dx, dx_ref, 1e-2, "bf16 dx");
}

TEST(FusedRmsNorm, Fp32ResidualIntoBf16Output) {
  auto x = randn({4, 6, 64}, 13).requires_grad_();
  auto w = (1 + 0.1 * randn({64}, 14)).requires_grad_();
  auto y = kernels::rms_norm(x, w, 1e-5, torch::kBFloat16);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  auto y_ref = rms_ref(x, w, 1e-5);
  expect_close(y, y_ref, 1e-2, "y");
  auto dy = randn({4, 6, 64}, 15).to(torch::kBFloat16);
  auto g = torch::autograd::grad({y}, {x, w}, {dy});
  auto g_ref = torch::autograd::grad({y_ref}, {x, w}, {dy.to(torch::kFloat)});
  EXPECT_EQ(g[0].scalar_type(), torch::kFloat);
  // dy is the same bf16 values in both; only the forward's rounding differs: fp32 tolerance.
  expect_close(g[0], g_ref[0], 2e-6, "dx (fp32)");
  expect_close(g[1], g_ref[1], 2e-6, "dw (fp32)");
}

// ---- SwiGLU -------------------------------------------------------------------------------------

TEST(FusedSwiglu, ForwardAndGradientsMatchFp32AndBf16) {
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    const double tol = dtype == torch::kFloat ? 2e-6 : 1e-2;
    auto g = (randn({3, 4, 77}, 20) * 3).to(dtype).requires_grad_();
    auto u = randn({3, 4, 77}, 21).to(dtype).requires_grad_();
    auto dy = randn({3, 4, 77}, 22).to(dtype);
    auto gf = g.detach().to(torch::kFloat).requires_grad_();
    auto uf = u.detach().to(torch::kFloat).requires_grad_();
    auto ref = torch::silu(gf) * uf;
    auto ref_grads = torch::autograd::grad({ref}, {gf, uf}, {dy.to(torch::kFloat)});
    auto y = kernels::swiglu(g, u);
    EXPECT_EQ(y.scalar_type(), dtype);
    expect_close(y, ref, tol, "y");
    auto grads = torch::autograd::grad({y}, {g, u}, {dy});
    expect_close(grads[0], ref_grads[0], tol, "d gate");
    expect_close(grads[1], ref_grads[1], tol, "d up");
  }
}

// ---- bf16 linear ---------------------------------------------------------------------------------

TEST(LinearBf16, BitwiseTheAutogradCastOfTheMasterWeights) {
  auto x = randn({3, 5, 48}, 70).to(torch::kBFloat16).requires_grad_();
  auto w = (0.3 * randn({40, 48}, 71)).requires_grad_();
  auto b = randn({40}, 72).requires_grad_();
  auto dy = randn({3, 5, 40}, 73).to(torch::kBFloat16);
  auto ref = torch::nn::functional::linear(x, w.to(torch::kBFloat16), b.to(torch::kBFloat16));
  auto g_ref = torch::autograd::grad({ref}, {x, w, b}, {dy});
  for (bool cache : {false, true}) {
    auto y = kernels::linear_bf16(x, w, b, cache);
    EXPECT_TRUE(torch::equal(y, ref)) << "cache " << cache;
    auto g = torch::autograd::grad({y}, {x, w, b}, {dy});
    EXPECT_TRUE(torch::equal(g[0], g_ref[0])) << "dx, cache " << cache;
    EXPECT_EQ(g[1].scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::equal(g[1], g_ref[1])) << "dw, cache " << cache;
    // db: the reference sums in bf16's accumulation, ours in fp32 then exact: close, not equal.
    expect_close(g[2], g_ref[2], 1e-2, "db");
  }
  kernels::clear_bf16_weight_cache();
}

TEST(LinearBf16, CacheFollowsInPlaceUpdatesOfTheWeight) {
  auto x = randn({4, 16}, 74).to(torch::kBFloat16);
  auto w = randn({8, 16}, 75).requires_grad_();
  auto y1 = kernels::linear_bf16(x, w, {}, true);
  {
    torch::NoGradGuard no_grad;
    w.add_(1.0);  // an optimizer step: the version counter moves
  }
  auto y2 = kernels::linear_bf16(x, w, {}, true);
  EXPECT_TRUE(torch::equal(y2, torch::nn::functional::linear(x, w.detach().to(torch::kBFloat16))));
  EXPECT_FALSE(torch::equal(y1, y2));
  kernels::clear_bf16_weight_cache();
}

TEST(LinearBf16, CastsRoundToNearestEvenLikeTensorTo) {
  auto x = randn({1000}, 76) * 1e3;
  x[0] = std::numeric_limits<float>::infinity();
  x[1] = -0.0f;
  x[2] = 1.0f + 1.0f / 256;  // exactly halfway between two bf16 values: rounds to even
  EXPECT_TRUE(torch::equal(kernels::to_bf16(x), x.to(torch::kBFloat16)));
  auto b = x.to(torch::kBFloat16);
  EXPECT_TRUE(torch::equal(kernels::to_f32(b), b.to(torch::kFloat)));
}

// ---- fp32 GEMM through oneDNN ------------------------------------------------------------------

TEST(OneDnnGemm, AvailableWithDebiansLibTorch) {
  // Debian's libtorch1.13 links libdnnl2 dynamically; without the symbol every fp32 GEMM would
  // silently stay on OpenBLAS, which is what this test exists to catch.
  EXPECT_TRUE(kernels::onednn_sgemm_available());
}

TEST(OneDnnGemm, ProductsOfEveryOperandLayoutMatchTorchMm) {
  auto a = randn({37, 53}, 80), b = randn({53, 29}, 81);
  auto ref = torch::mm(a.to(torch::kDouble), b.to(torch::kDouble)).to(torch::kFloat);
  const torch::Tensor as[] = {a, a.t().contiguous().t()};
  const torch::Tensor bs[] = {b, b.t().contiguous().t()};
  for (const auto& x : as) {
    for (const auto& y : bs) expect_close(kernels::mm_f32(x, y), ref, 1e-5, "layouts");
  }
  // Strided rows (a narrowed column range) and a view that needs a copy (every other column).
  auto wide = randn({37, 80}, 82);
  expect_close(kernels::mm_f32(wide.narrow(1, 10, 53), b),
               torch::mm(wide.narrow(1, 10, 53), b), 1e-5, "row stride");
  auto every_other = randn({37, 106}, 83).slice(1, 0, 106, 2);
  expect_close(kernels::mm_f32(every_other, b), torch::mm(every_other, b), 1e-5, "copied");
  // Empty products.
  EXPECT_EQ(kernels::mm_f32(torch::zeros({0, 4}), torch::zeros({4, 3})).sizes(),
            torch::IntArrayRef({0, 3}));
  EXPECT_TRUE(torch::equal(kernels::mm_f32(torch::zeros({2, 0}), torch::zeros({0, 3})),
                           torch::zeros({2, 3})));
  EXPECT_THROW(kernels::mm_f32(a, a), c10::Error);
  EXPECT_THROW(kernels::mm_f32(a.to(torch::kDouble), b.to(torch::kDouble)), c10::Error);
}

TEST(OneDnnGemm, LinearAndItsGradientsMatchLibTorch) {
  auto x = randn({3, 5, 48}, 84).requires_grad_();
  auto w = (0.3 * randn({40, 48}, 85)).requires_grad_();
  auto b = randn({40}, 86).requires_grad_();
  auto dy = randn({3, 5, 40}, 87);
  auto ref = torch::nn::functional::linear(x, w, b);
  auto g_ref = torch::autograd::grad({ref}, {x, w, b}, {dy});
  auto y = kernels::linear_f32(x, w, b);
  EXPECT_EQ(y.sizes(), ref.sizes());
  expect_close(y, ref, 1e-5, "y");
  auto g = torch::autograd::grad({y}, {x, w, b}, {dy});
  expect_close(g[0], g_ref[0], 1e-5, "dx");
  expect_close(g[1], g_ref[1], 1e-5, "dw");
  expect_close(g[2], g_ref[2], 1e-5, "db");
  // A frozen weight and no bias: only dx.
  auto frozen = w.detach();
  auto y2 = kernels::linear_f32(x, frozen);
  auto g2 = torch::autograd::grad({y2}, {x}, {dy});
  auto g2_ref = torch::autograd::grad({torch::nn::functional::linear(x, frozen)}, {x}, {dy});
  expect_close(g2[0], g2_ref[0], 1e-5, "dx frozen");
}

TEST(OneDnnGemm, MixedLinearFollowsTheSwitch) {
  auto x = randn({6, 16}, 88), w = randn({8, 16}, 89);
  const bool before = kernels::onednn_fp32_gemm();
  kernels::set_onednn_fp32_gemm(true);
  auto on = core::mixed_linear(x.requires_grad_(), w);
  EXPECT_NE(on.grad_fn()->name().find("LinearF32Fn"), std::string::npos) << on.grad_fn()->name();
  kernels::set_onednn_fp32_gemm(false);
  auto off = core::mixed_linear(x, w);
  EXPECT_EQ(off.grad_fn()->name().find("LinearF32Fn"), std::string::npos);
  expect_close(on, off, 1e-5, "on vs off");
  kernels::set_onednn_fp32_gemm(before);
}

TEST(OneDnnGemm, BatchedProductsOfEveryLayoutMatchMatmul) {
  const int64_t B = 2, H = 3, m = 7, k = 5, n = 4;
  auto a = randn({B, H, m, k}, 90), b = randn({B, H, k, n}, 91);
  auto ref = torch::matmul(a.to(torch::kDouble), b.to(torch::kDouble)).to(torch::kFloat);
  // Contiguous; transposed matrices; heads split out of a [B, m, H, k] projection (strided leading
  // dims, row stride H * k).
  const torch::Tensor as[] = {a, a.transpose(-2, -1).contiguous().transpose(-2, -1),
                              a.transpose(1, 2).contiguous().transpose(1, 2)};
  const torch::Tensor bs[] = {b, b.transpose(-2, -1).contiguous().transpose(-2, -1),
                              b.transpose(1, 2).contiguous().transpose(1, 2)};
  for (const auto& x : as) {
    for (const auto& y : bs) {
      auto c = kernels::bmm_f32(x, y);
      EXPECT_TRUE(c.is_contiguous());
      expect_close(c, ref, 1e-5, "layouts");
    }
  }
  // A leading dim broadcast with stride 0, a 3-D batch, and a layout that needs a copy.
  auto shared = randn({B, 1, k, n}, 92).expand({B, H, k, n});
  expect_close(kernels::bmm_f32(a, shared), torch::matmul(a, shared), 1e-5, "stride 0");
  expect_close(kernels::bmm_f32(a[0], b[0]), torch::matmul(a[0], b[0]), 1e-5, "3-D");
  auto every_other = randn({B, H, m, 2 * k}, 93).slice(3, 0, 2 * k, 2);
  expect_close(kernels::bmm_f32(every_other, b), torch::matmul(every_other, b), 1e-5, "copied");
  EXPECT_EQ(kernels::bmm_f32(torch::zeros({2, 0, 4}), torch::zeros({2, 4, 3})).sizes(),
            torch::IntArrayRef({2, 0, 3}));
  EXPECT_THROW(kernels::bmm_f32(a, b[0]), c10::Error);
  EXPECT_THROW(kernels::bmm_f32(a, randn({B, 2, k, n}, 94)), c10::Error);
  EXPECT_THROW(kernels::bmm_f32(a[0][0], b[0][0]), c10::Error);
}

TEST(OneDnnGemm, BatchedProductGradientsMatchMatmul) {
  auto a = randn({2, 3, 9, 6}, 95).requires_grad_();
  auto b = randn({2, 3, 6, 11}, 96).requires_grad_();
  auto dy = randn({2, 3, 9, 11}, 97);
  auto g_ref = torch::autograd::grad({torch::matmul(a, b)}, {a, b}, {dy});
  auto y = kernels::matmul_f32(a, b);
  EXPECT_NE(y.grad_fn()->name().find("BmmF32Fn"), std::string::npos) << y.grad_fn()->name();
  auto g = torch::autograd::grad({y}, {a, b}, {dy});
  expect_close(g[0], g_ref[0], 1e-5, "da");
  expect_close(g[1], g_ref[1], 1e-5, "db");
  // Only one side needs a gradient.
  auto g_b = torch::autograd::grad({kernels::matmul_f32(a.detach(), b)}, {b}, {dy});
  expect_close(g_b[0], g_ref[1], 1e-5, "db alone");
}

// ---- RoPE ---------------------------------------------------------------------------------------

TEST(FusedRope, MatchesApplyRotaryForTransposedHeadsAndBothTableShapes) {
  const int64_t B = 2, T = 9, H = 3, d = 16;
  // q as the model makes it: a projection [B, T, H * d] viewed as heads and transposed.
  auto proj = randn({B, T, H * d}, 30).requires_grad_();
  auto pos = torch::arange(T).repeat({B, 1});
  pos[1] = torch::arange(3, 3 + T);  // a different offset per row (left padding)
  auto [cos, sin] = core::rotary_tables(pos, d, 10000.0, torch::kFloat);
  auto dy = randn({B, H, T, d}, 31);
  auto q_ref = proj.view({B, T, H, d}).transpose(1, 2);
  auto ref = core::apply_rotary(q_ref, cos, sin);
  auto g_ref = torch::autograd::grad({ref}, {proj}, {dy})[0];
  auto y = kernels::apply_rotary(proj.view({B, T, H, d}).transpose(1, 2), cos, sin);
  EXPECT_TRUE(y.is_contiguous());
  expect_close(y, ref, 2e-6, "rope");
  expect_close(torch::autograd::grad({y}, {proj}, {dy})[0], g_ref, 2e-6, "d rope");
  // [T, d] tables (positions shared by the batch).
  auto [c2, s2] = core::rotary_tables(torch::arange(T).unsqueeze(0), d, 10000.0, torch::kFloat);
  auto x = randn({B, H, T, d}, 32);
  expect_close(kernels::apply_rotary(x, c2[0][0], s2[0][0]), core::apply_rotary(x, c2, s2), 2e-6,
               "rope [T, d]");
  // bf16 input, fp32 tables.
  auto xb = x.to(torch::kBFloat16);
  auto yb = kernels::apply_rotary(xb, c2[0][0], s2[0][0]);
  EXPECT_EQ(yb.scalar_type(), torch::kBFloat16);
  expect_close(yb, core::apply_rotary(xb.to(torch::kFloat), c2, s2), 1e-2, "rope bf16");
}

// ---- causal attention -------------------------------------------------------------------------------

// Both product paths: LibTorch's matmul and oneDNN's (the switch [train] kernels = fused sets).
TEST(FusedCausalAttention, MatchesAttentionWithCausalBiasIncludingAPrefix) {
  const int64_t B = 2, H = 3, T = 21, d = 8;
  const bool before = kernels::onednn_fp32_gemm();
  for (int64_t prefix : {0, 5}) {
    auto q = randn({B, H, T, d}, 40).requires_grad_();
    auto k = randn({B, H, prefix + T, d}, 41).requires_grad_();
    auto v = randn({B, H, prefix + T, d}, 42).requires_grad_();
    auto bias = core::causal_attention_bias(torch::ones({B, T}, torch::kLong), torch::kFloat);
    if (prefix > 0) bias = torch::cat({torch::zeros({B, 1, T, prefix}), bias}, -1);
    auto ref = core::attention(q, k, v, bias, 0.0, true);
    auto dy = randn({B, H, T, d}, 43);
    auto g_ref = torch::autograd::grad({ref}, {q, k, v}, {dy});
    for (bool onednn : {false, true}) {
      kernels::set_onednn_fp32_gemm(onednn);
      const std::string path =
          std::string(onednn ? "oneDNN" : "matmul") + ", prefix " + std::to_string(prefix);
      auto out = kernels::causal_attention(q, k, v, prefix);
      EXPECT_EQ(out.grad_fn()->name().find("BmmF32Fn") != std::string::npos, onednn) << path;
      expect_close(out, ref, 2e-6, "out, " + path);
      auto g = torch::autograd::grad({out}, {q, k, v}, {dy});
      for (int i = 0; i < 3; ++i) {
        expect_close(g[i], g_ref[i], 2e-6, "grad " + std::to_string(i) + ", " + path);
      }
    }
  }
  kernels::set_onednn_fp32_gemm(before);
}

TEST(FusedCausalAttention, Bf16MatchesAttentionInBf16) {
  const int64_t B = 2, H = 2, T = 33, d = 16;
  auto q = randn({B, H, T, d}, 44).to(torch::kBFloat16).requires_grad_();
  auto k = randn({B, H, T, d}, 45).to(torch::kBFloat16).requires_grad_();
  auto v = randn({B, H, T, d}, 46).to(torch::kBFloat16).requires_grad_();
  // (causal_attention_bias cannot build a bf16 bias: it fills with float's lowest, which bf16's
  // masked_fill refuses; -inf after conversion masks the same keys.)
  auto bias = core::causal_attention_bias(torch::ones({B, T}, torch::kLong), torch::kFloat)
                  .to(torch::kBFloat16);
  auto ref = core::attention(q, k, v, bias, 0.0, true);
  auto out = kernels::causal_attention(q, k, v, 0);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  expect_close(out, ref, 1e-2, "out");
  auto dy = randn({B, H, T, d}, 47).to(torch::kBFloat16);
  auto g = torch::autograd::grad({out}, {q, k, v}, {dy});
  auto g_ref = torch::autograd::grad({ref}, {q, k, v}, {dy});
  // The reference's softmax backward runs in bf16 on bf16 probabilities; ours accumulates the
  // row dot product in fp32: a few bf16 roundings apart.
  for (int i = 0; i < 3; ++i) expect_close(g[i], g_ref[i], 3e-2, "grad " + std::to_string(i));
}

TEST(FusedCausalAttention, SoftmaxRejectsWrongShapes) {
  EXPECT_THROW(kernels::causal_softmax_(torch::zeros({1, 1, 4, 3}), 1.0, 0), c10::Error);
  EXPECT_THROW(kernels::causal_softmax_(torch::zeros({1, 1, 4, 4}, torch::kDouble), 1.0, 0),
               c10::Error);
  EXPECT_THROW(kernels::causal_softmax_(torch::zeros({1, 1, 4, 8}).narrow(3, 0, 4), 1.0, 0),
               c10::Error);
}

// ---- recomputation ------------------------------------------------------------------------------

namespace {

// A block with the llama pieces that matter for recomputation: norm, projections, dropout on the
// default stream (replicated activations) and on the tracker's model-parallel stream (sharded
// ones), a residual.
struct ToyBlock {
  torch::Tensor norm_w = (1 + 0.1 * randn({32}, 50)).requires_grad_();
  torch::Tensor w1 = (0.2 * randn({64, 32}, 51)).requires_grad_();
  torch::Tensor w2 = (0.2 * randn({32, 64}, 52)).requires_grad_();
  std::vector<torch::Tensor> params() const { return {norm_w, w1, w2}; }
  torch::Tensor forward(const torch::Tensor& x) const {
    auto h = torch::nn::functional::linear(kernels::rms_norm(x, norm_w, 1e-5), w1);
    {
      auto fork = parallel::rng_tracker().fork();
      h = torch::dropout(torch::silu(h), 0.3, true);
    }
    return x + torch::dropout(torch::nn::functional::linear(h, w2), 0.2, true);
  }
};

struct RunResult {
  std::vector<torch::Tensor> grads;
  torch::Tensor next_default, next_mp;  // a draw from each stream after the step
};

RunResult run_blocks(bool use_recompute, bool input_requires_grad) {
  parallel::rng_tracker().seed(99, 0);
  std::vector<ToyBlock> blocks(3);
  auto x0 = randn({4, 5, 32}, 53).requires_grad_(input_requires_grad);
  auto x = x0;
  for (auto& b : blocks) {
    if (use_recompute) {
      x = core::recompute([&b](const std::vector<torch::Tensor>& in) { return b.forward(in[0]); },
                          {x}, b.params());
    } else {
      x = b.forward(x);
    }
  }
  (x * randn({4, 5, 32}, 54)).sum().backward();
  RunResult r;
  for (auto& b : blocks) {
    for (auto& p : b.params()) r.grads.push_back(p.grad());
  }
  if (input_requires_grad) r.grads.push_back(x0.grad());
  r.next_default = torch::rand({4});
  auto fork = parallel::rng_tracker().fork();
  r.next_mp = torch::rand({4});
  return r;
}

}  // namespace

TEST(Recompute, GradientsAndRngStreamsBitwiseEqualWithDropout) {
  for (bool input_grad : {true, false}) {
    auto plain = run_blocks(false, input_grad);
    auto again = run_blocks(true, input_grad);
    ASSERT_EQ(plain.grads.size(), again.grads.size());
    for (size_t i = 0; i < plain.grads.size(); ++i) {
      ASSERT_TRUE(again.grads[i].defined()) << "grad " << i << " missing (input grad "
                                            << input_grad << ")";
      EXPECT_TRUE(torch::equal(plain.grads[i], again.grads[i]))
          << "grad " << i << " differs (input grad " << input_grad << ")";
    }
    // The rest of training sees the same random numbers as without recomputation.
    EXPECT_TRUE(torch::equal(plain.next_default, again.next_default));
    EXPECT_TRUE(torch::equal(plain.next_mp, again.next_mp));
  }
}

TEST(Recompute, DropoutIsActiveSoTheParityAboveCanFail) {
  // Control: the block's output depends on the RNG streams (a recomputation with other masks
  // would give other gradients), and recompute's forward equals the plain forward.
  parallel::rng_tracker().seed(99, 0);
  ToyBlock b;
  auto x0 = randn({4, 5, 32}, 53).requires_grad_();
  auto y = core::recompute([&b](const std::vector<torch::Tensor>& in) { return b.forward(in[0]); },
                           {x0}, b.params());
  auto plain_y = [&] {
    parallel::rng_tracker().seed(99, 0);
    return b.forward(x0);
  }();
  EXPECT_TRUE(torch::equal(y, plain_y));
  auto other = b.forward(x0);  // streams have moved on: different masks
  EXPECT_FALSE(torch::equal(y, other));
}

TEST(Recompute, NoGradModeJustCallsTheFunction) {
  torch::NoGradGuard no_grad;
  int calls = 0;
  auto y = core::recompute(
      [&](const std::vector<torch::Tensor>& in) {
        ++calls;
        return in[0] * 2;
      },
      {torch::ones({2})});
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(y.requires_grad());
}

// ---- caching CPU allocator ------------------------------------------------------------------------

TEST(CachingCpuAllocator, ReusesLargeBlocksAcrossStepsAndComputesCorrectly) {
  kernels::install_caching_cpu_allocator(int64_t{1} << 30);
  kernels::install_caching_cpu_allocator();  // idempotent
  ASSERT_TRUE(kernels::caching_cpu_allocator_installed());
  const auto before = kernels::caching_cpu_allocator_stats();
  void* first = nullptr;
  for (int step = 0; step < 3; ++step) {
    // A "step": a 12 MiB tensor (2 MiB size classes) and a 300 KiB one, used and freed.
    auto a = torch::full({3 << 20}, static_cast<float>(step));
    auto b = torch::arange(75 << 10, torch::kFloat);
    if (step == 0) first = a.data_ptr();
    EXPECT_EQ(a.data_ptr(), first) << "step " << step << " did not reuse the block";
    EXPECT_EQ(a.sum().item<double>(), static_cast<double>(step) * (3 << 20));
    EXPECT_EQ(b[(75 << 10) - 1].item<float>(), static_cast<float>((75 << 10) - 1));
  }
  const auto s = kernels::caching_cpu_allocator_stats();
  EXPECT_EQ(s.fresh_blocks - before.fresh_blocks, 2);
  EXPECT_GE(s.reused_blocks - before.reused_blocks, 4);
  EXPECT_EQ(s.in_use_bytes, before.in_use_bytes);
  EXPECT_GE(s.cached_bytes, (12 << 20) + (320 << 10));
  kernels::release_cached_cpu_memory();
  EXPECT_EQ(kernels::caching_cpu_allocator_stats().cached_bytes, 0);
  // Small tensors still work (default allocator).
  EXPECT_EQ(torch::ones({7}).sum().item<float>(), 7.0f);
}

TEST(CachingCpuAllocator, CapUnmapsInsteadOfCaching) {
  kernels::install_caching_cpu_allocator(/*cap_bytes=*/1 << 20);
  { auto a = torch::empty({4 << 20}, torch::kByte); }  // 4 MiB > cap: unmapped on free
  EXPECT_EQ(kernels::caching_cpu_allocator_stats().cached_bytes, 0);
  { auto b = torch::empty({512 << 10}, torch::kByte); }  // 512 KiB <= cap: cached
  EXPECT_EQ(kernels::caching_cpu_allocator_stats().cached_bytes, 512 << 10);
}

TEST(CachingCpuAllocator, RawAllocationsAsOneDnnMakesThem) {
  kernels::install_caching_cpu_allocator();
  auto* a = c10::GetCPUAllocator();
  for (size_t n : {size_t{100}, size_t{1} << 20, size_t{16} << 20}) {
    void* p = a->raw_allocate(n);
    ASSERT_NE(p, nullptr);
    std::memset(p, 1, n);
    a->raw_deallocate(p);
  }
  // A bf16 batched GEMM goes through oneDNN, which allocates through raw_allocate.
  auto x = torch::randn({64, 256, 64}).to(torch::kBFloat16);
  auto y = torch::bmm(x, x.transpose(1, 2));
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
}
