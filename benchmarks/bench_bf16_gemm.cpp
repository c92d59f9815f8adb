// Which bf16 GEMMs take LibTorch 1.13's oneDNN path: GFLOP/s of the 30M llama's GEMM shapes in
// fp32 and bf16, each as the model issues it (linear forward x W^T, the two backward products,
// batched attention products), with contiguous and transposed operands. A bf16 case that runs at
// or below its fp32 rate fell off the oneDNN path onto LibTorch's reference bf16 GEMM; run under
// `perf record` to see which (oneDNN's JIT code shows as anonymous memory, the fallback as
// libtorch_cpu symbols). Prints one line per case. docs/benchmarks-profile.md records the result.
//   bench_bf16_gemm [reps]   (threads: OMP_NUM_THREADS)
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

namespace {

double gflops(const std::function<torch::Tensor()>& f, double flop, int reps) {
  f();  // warm-up (oneDNN primitive creation, first-touch)
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) f();
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  return flop / s / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 5;
  if (const char* t = std::getenv("OMP_NUM_THREADS")) at::set_num_threads(std::atoi(t));
  const int64_t N = 8 * 256, H = 512, F = 1376, V = 8192, B = 64, T = 256, d = 64;
  std::printf("threads %d, mkldnn enabled %d\n", at::get_num_threads(),
              static_cast<int>(at::globalContext().userEnabledMkldnn()));
  struct Case {
    std::string name;
    int64_t m, k, n;  // [m, k] x [k, n]
    int kind;         // 0: linear x W^T, 1: dX = dY W, 2: dW = dY^T X, 3: bmm, 4: bmm with k^T
  };
  const Case cases[] = {
      {"linear fwd  [2048,512]x[1376,512]^T", N, H, F, 0},
      {"linear dX   [2048,1376]x[1376,512]", N, F, H, 1},
      {"linear dW   [1376,2048]^T..x[2048,512]", F, N, H, 2},
      {"lm_head fwd [2048,512]x[8192,512]^T", N, H, V, 0},
      {"lm_head dW  [8192,2048]x[2048,512]", V, N, H, 2},
      {"square mm   [2048,2048]x[2048,2048]", 2048, 2048, 2048, 1},
      {"bmm QK^T    64x[256,64]x[64,256] (k transposed view)", T, d, T, 4},
      {"bmm PV      64x[256,256]x[256,64]", T, T, d, 3},
  };
  for (const auto& c : cases) {
    for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
      auto o = torch::TensorOptions().dtype(dtype);
      std::function<torch::Tensor()> f;
      torch::Tensor a, b;
      switch (c.kind) {
        case 0:  // F.linear(x, W): x [m, k], W [n, k]
          a = torch::randn({c.m, c.k}, o);
          b = torch::randn({c.n, c.k}, o);
          f = [a, b] { return torch::nn::functional::linear(a, b); };
          break;
        case 1:  // dY [m, k] x W [k, n], both contiguous
          a = torch::randn({c.m, c.k}, o);
          b = torch::randn({c.k, c.n}, o);
          f = [a, b] { return torch::mm(a, b); };
          break;
        case 2:  // dW = dY^T X: dY [k, m] transposed view, X [k, n]
          a = torch::randn({c.k, c.m}, o);
          b = torch::randn({c.k, c.n}, o);
          f = [a, b] { return torch::mm(a.t(), b); };
          break;
        case 3:
          a = torch::randn({B, c.m, c.k}, o);
          b = torch::randn({B, c.k, c.n}, o);
          f = [a, b] { return torch::bmm(a, b); };
          break;
        case 4:  // q [B, T, d] x k^T where k is [B, T, d]
          a = torch::randn({B, c.m, c.k}, o);
          b = torch::randn({B, c.n, c.k}, o);
          f = [a, b] { return torch::bmm(a, b.transpose(1, 2)); };
          break;
      }
      const double flop = 2.0 * c.m * c.k * c.n * (c.kind >= 3 ? B : 1);
      std::printf("%-55s %-9s %8.1f GFLOP/s\n", c.name.c_str(),
                  dtype == torch::kFloat ? "fp32" : "bf16", gflops(f, flop, reps));
      std::fflush(stdout);
    }
  }
  return 0;
}
