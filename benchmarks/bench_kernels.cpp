// Fused kernels (core/kernels/fused_ops.h) against the LibTorch expressions they replace, at the
// ~30M llama's shapes (batch 8, seq 256, hidden 512, 8 heads, ffn 1376, vocab 8192): forward +
// backward per call, fp32 and bf16, reporting CPU milliseconds (this process, so other load on
// the machine inflates it less than wall time) and minor page faults per call (deterministic: the
// cost of fresh allocations, ~18 us each on the benchmark VM). Outputs are checked to agree before
// anything is timed. docs/benchmarks-profile.md records a run.
//   bench_kernels [reps] [--cache]   (--cache: install the caching CPU allocator first;
//                                     threads: OMP_NUM_THREADS)
//   bench_kernels --gemm [reps] [--cache]
//                                    fp32 GEMM rate (GFLOP/s, best wall time of reps x 10 calls)
//                                    of LibTorch's mm (the BLAS) and kernels::mm_f32 (oneDNN's
//                                    sgemm) at the linear layers' shapes of a training step
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>

#include "core/kernels/caching_allocator.h"
#include "core/kernels/fused_ops.h"
#include "core/layers.h"
#include "core/loss.h"
#include "core/optimizer.h"

using namespace shardtune;

namespace {

struct Cost {
  double cpu_ms, faults;
};

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

Cost measure(const std::function<void()>& f, int reps) {
  f();
  f();  // warm-up (and the caching allocator's first fill)
  const long f0 = minor_faults();
  const std::clock_t c0 = std::clock();
  for (int i = 0; i < reps; ++i) f();
  const double cpu = 1e3 * static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC / reps;
  return {cpu, static_cast<double>(minor_faults() - f0) / reps};
}

void row(const std::string& name, const char* dtype, const Cost& ref, const Cost& fused) {
  std::printf("%-34s %-5s  LibTorch %8.2f ms %8.0f faults | fused %8.2f ms %8.0f faults | %5.2fx\n",
              name.c_str(), dtype, ref.cpu_ms, ref.faults, fused.cpu_ms, fused.faults,
              ref.cpu_ms / fused.cpu_ms);
  std::fflush(stdout);
}

torch::Tensor rn(std::vector<int64_t> s, torch::ScalarType t = torch::kFloat) {
  return torch::randn(s).to(t);
}

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "bench_kernels: %s: fused and LibTorch results disagree\n", what.c_str());
    std::exit(1);
  }
}

bool close(const torch::Tensor& a, const torch::Tensor& b, double rel) {
  auto d = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
  return d <= rel * b.to(torch::kDouble).abs().max().item<double>() + 1e-12;
}

}  // namespace

// The three products of a linear layer y = x W^T (x [m, k], W [n, k]): forward, the input's
// gradient g W and the weight's gradient g^T x, with the operand views the layers pass.
int gemm_rates(int reps) {
  struct Shape {
    const char* what;
    int64_t tokens, in, out;
  };
  const Shape shapes[] = {{"30M q/k/v/o 512->512", 2048, 512, 512},
                          {"30M gate/up 512->1376", 2048, 512, 1376},
                          {"30M down 1376->512", 2048, 1376, 512},
                          {"30M LM head 512->8192", 2048, 512, 8192},
                          {"small q/k/v/o 128->128", 1024, 128, 128},
                          {"small LM head 128->8192", 1024, 128, 8192}};
  std::printf("fp32 GEMM, threads %d, OPENBLAS_CORETYPE=%s, oneDNN sgemm %s, %d reps\n",
              at::get_num_threads(),
              std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "unset",
              kernels::onednn_sgemm_available() ? "found" : "NOT FOUND", reps);
  std::printf("%-26s %-8s %10s %10s %7s\n", "layer", "product", "BLAS", "oneDNN", "ratio");
  for (const auto& sh : shapes) {
    auto x = torch::randn({sh.tokens, sh.in}), w = torch::randn({sh.out, sh.in});
    auto g = torch::randn({sh.tokens, sh.out});
    const std::pair<torch::Tensor, torch::Tensor> products[] = {{x, w.t()}, {g, w}, {g.t(), x}};
    const char* names[] = {"x W^T", "g W", "g^T x"};
    for (int p = 0; p < 3; ++p) {
      const auto& [a, b] = products[p];
      auto ref = torch::mm(a, b);
      const double err = (kernels::mm_f32(a, b) - ref).abs().max().item<double>();
      if (err > 1e-4 * ref.abs().max().item<double>()) {
        std::fprintf(stderr, "bench_kernels: mm_f32 disagrees with torch::mm (%g)\n", err);
        return 1;
      }
      double best[2] = {0, 0};
      for (int r = 0; r < reps; ++r) {
        for (int which = 0; which < 2; ++which) {
          const auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < 10; ++i) {
            auto c = which == 0 ? torch::mm(a, b) : kernels::mm_f32(a, b);
          }
          const double s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          const double flops = 2.0 * a.size(0) * a.size(1) * b.size(1) * 10;
          best[which] = std::max(best[which], flops / s / 1e9);
        }
      }
      std::printf("%-26s %-8s %10.1f %10.1f %7.2f\n", sh.what, names[p], best[0], best[1],
                  best[1] / best[0]);
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  int reps = 5;
  bool cache = false, gemm = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--cache") == 0) {
      cache = true;
    } else if (std::strcmp(argv[i], "--gemm") == 0) {
      gemm = true;
    } else {
      reps = std::atoi(argv[i]);
    }
  }
  if (cache) kernels::install_caching_cpu_allocator();
  if (const char* t = std::getenv("OMP_NUM_THREADS")) at::set_num_threads(std::atoi(t));
  if (gemm) return gemm_rates(reps);
  std::printf("threads %d, caching allocator %s, %d reps\n", at::get_num_threads(),
              cache ? "on" : "off", reps);
  const int64_t B = 8, T = 256, H = 512, NH = 8, D = 64, F = 1376, V = 8192;

  for (auto dt : {torch::kFloat, torch::kBFloat16}) {
    const char* dn = dt == torch::kFloat ? "fp32" : "bf16";
    const double tol = dt == torch::kFloat ? 1e-5 : 2e-2;
    {  // cross-entropy over the vocabulary, as core::causal_lm_loss vs fused (no logits copy)
      auto logits = rn({B, T, V}, dt).requires_grad_();
      auto labels = torch::randint(0, V, {B, T});
      auto ref = [&] {
        auto l = core::causal_lm_loss(logits, labels).sum;
        return std::make_pair(l, torch::autograd::grad({l}, {logits})[0]);
      };
      auto targets = kernels::next_token_targets(labels);
      auto fused = [&] {
        auto l = kernels::fused_cross_entropy(logits, targets, 0, V).sum();
        return std::make_pair(l, torch::autograd::grad({l}, {logits})[0]);
      };
      auto a = ref(), b = fused();
      check(close(b.first, a.first, 1e-5) && close(b.second, a.second, tol), "cross-entropy");
      row("cross-entropy [8,256,8192] f+b", dn, measure([&] { ref(); }, reps),
          measure([&] { fused(); }, reps));
    }
    {  // RMSNorm
      auto x = rn({B, T, H}, dt).requires_grad_();
      auto w = torch::ones({H}).requires_grad_();
      auto dy = rn({B, T, H}, dt);
      core::RMSNorm norm(H, 1e-5);
      auto ref = [&] {
        auto xf = x.to(torch::kFloat);
        auto y = w * (xf * torch::rsqrt(xf.pow(2).mean(-1, true) + 1e-5)).to(x.scalar_type());
        return torch::autograd::grad({y}, {x, w}, {dy.to(y.scalar_type())});
      };
      auto fused = [&] { return torch::autograd::grad({kernels::rms_norm(x, w, 1e-5)}, {x, w}, {dy}); };
      auto a = ref(), b = fused();
      check(close(b[0], a[0], tol) && close(b[1], a[1], tol), "rmsnorm");
      row("RMSNorm [8,256,512] f+b", dn, measure([&] { ref(); }, reps),
          measure([&] { fused(); }, reps));
    }
    {  // SwiGLU
      auto g = rn({B, T, F}, dt).requires_grad_(), u = rn({B, T, F}, dt).requires_grad_();
      auto dy = rn({B, T, F}, dt);
      auto ref = [&] { return torch::autograd::grad({torch::silu(g) * u}, {g, u}, {dy}); };
      auto fused = [&] { return torch::autograd::grad({kernels::swiglu(g, u)}, {g, u}, {dy}); };
      auto a = ref(), b = fused();
      check(close(b[0], a[0], tol) && close(b[1], a[1], tol), "swiglu");
      row("SwiGLU [8,256,1376] f+b", dn, measure([&] { ref(); }, reps),
          measure([&] { fused(); }, reps));
    }
    {  // RoPE on q as the model makes it (transposed view of the projection)
      auto proj = rn({B, T, H}, dt).requires_grad_();
      auto [cos, sin] = core::rotary_tables(torch::arange(T).repeat({B, 1}), D, 10000.0, dt);
      auto dy = rn({B, NH, T, D}, dt);
      auto q = [&] { return proj.view({B, T, NH, D}).transpose(1, 2); };
      auto ref = [&] {
        return torch::autograd::grad({core::apply_rotary(q(), cos, sin)}, {proj}, {dy});
      };
      auto fused = [&] {
        return torch::autograd::grad({kernels::apply_rotary(q(), cos, sin)}, {proj}, {dy});
      };
      auto a = ref(), b = fused();
      check(close(b[0], a[0], tol), "rope");
      row("RoPE [8,8,256,64] f+b", dn, measure([&] { ref(); }, reps),
          measure([&] { fused(); }, reps));
    }
    {  // attention core (scores, mask, softmax, PV) with the model's [B,1,T,T] bias
      auto q = rn({B, NH, T, D}, dt).requires_grad_(), k = rn({B, NH, T, D}, dt).requires_grad_();
      auto v = rn({B, NH, T, D}, dt).requires_grad_();
      auto dy = rn({B, NH, T, D}, dt);
      auto mask = torch::ones({B, T}, torch::kLong);
      auto ref = [&] {
        auto bias = core::causal_attention_bias(mask, torch::kFloat).to(dt);
        return torch::autograd::grad({core::attention(q, k, v, bias, 0.0, true)}, {q, k, v}, {dy});
      };
      auto fused = [&] {
        return torch::autograd::grad({kernels::causal_attention(q, k, v, 0)}, {q, k, v}, {dy});
      };
      auto a = ref(), b = fused();
      check(close(b[0], a[0], dt == torch::kFloat ? 1e-5 : 5e-2), "attention");
      row("attention incl. mask [8,8,256,64]", dn, measure([&] { ref(); }, reps),
          measure([&] { fused(); }, reps));
    }
  }
  {  // bf16 linear with fp32 master weights: autograd's cast vs linear_bf16 (gate_proj's shape)
    auto x = rn({B, T, H}, torch::kBFloat16).requires_grad_();
    auto w = (0.02 * torch::randn({F, H})).requires_grad_();
    auto dy = rn({B, T, F}, torch::kBFloat16);
    auto ref = [&] {
      return torch::autograd::grad({torch::nn::functional::linear(x, w.to(torch::kBFloat16))},
                                   {x, w}, {dy});
    };
    auto fused = [&] { return torch::autograd::grad({kernels::linear_bf16(x, w)}, {x, w}, {dy}); };
    auto a = ref(), b = fused();
    check(torch::equal(a[0], b[0]) && torch::equal(a[1], b[1]), "linear_bf16");
    row("linear bf16, fp32 master [2048,512]x[1376,512]^T", "bf16", measure([&] { ref(); }, reps),
        measure([&] { fused(); }, reps));
  }
  {  // AdamW over the model's parameter shapes (33.7M fp32)
    std::vector<std::vector<int64_t>> shapes = {{V, H}, {V, H}};
    for (int l = 0; l < 8; ++l) {
      for (int i = 0; i < 4; ++i) shapes.push_back({H, H});
      for (int i = 0; i < 2; ++i) shapes.push_back({F, H});
      shapes.push_back({H, F});
      shapes.push_back({H});
      shapes.push_back({H});
    }
    std::vector<torch::Tensor> p, g, m, v, p2, m2, v2;
    std::vector<bool> decay;
    for (auto& s : shapes) {
      p.push_back(torch::randn(s));
      g.push_back(torch::randn(s) * 1e-3);
      m.push_back(torch::zeros(s));
      v.push_back(torch::zeros(s));
      p2.push_back(p.back().clone());
      m2.push_back(torch::zeros(s));
      v2.push_back(torch::zeros(s));
      decay.push_back(s.size() >= 2);
    }
    core::AdamWOptions o;
    o.weight_decay = 0.1;
    int64_t t1 = 0, t2 = 0;
    auto ref = [&] {
      ++t1;
      for (size_t i = 0; i < p.size(); ++i) {
        core::AdamWOptions oi = o;
        if (!decay[i]) oi.weight_decay = 0.0;
        core::adamw_update(p[i], g[i], m[i], v[i], t1, 1e-4, oi, {});
      }
    };
    auto fused = [&] {
      ++t2;
      kernels::fused_adamw(p2, g, m2, v2, decay, {1e-4, o.beta1, o.beta2, o.eps, o.weight_decay, t2});
    };
    ref();
    fused();
    for (size_t i = 0; i < p.size(); ++i) check(close(p2[i], p[i], 1e-6), "adamw");
    row("AdamW 33.7M fp32 params", "fp32", measure(ref, reps), measure(fused, reps));
  }
  return 0;
}
