// Training throughput benchmark: tokens/s and MFU of a ShardTune training step against the fp32
// GEMM rate LibTorch reaches on this machine, measured in the same run.
//
//   bench_train [--config FILE.ini] [--section.key=value ...]
// Defaults: the issue's ~30M llama (hidden 512, 8 layers, 8 heads, ffn 1376, vocab 8192,
// seq 256, micro-batch 8) on synthetic tokens. Prints one JSON line.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_config.h"
#include "core/model_config.h"
#include "launch/bootstrap.h"
#include "launch/config.h"
#include "launch/trainer.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"

using namespace shardtune;
using Clock = std::chrono::steady_clock;

namespace {

double gemm_gflops(int64_t n, int reps) {
  auto a = torch::randn({n, n});
  auto b = torch::randn({n, n});
  auto c = torch::mm(a, b);  // warm-up
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) c = torch::mm(a, b);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return 2.0 * n * n * n * reps / s / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  launch::MpiRuntime mpi(&argc, &argv);
  launch::Config c = bench::llama30m_config("runs/bench", /*seq_len=*/256, /*micro_batch=*/8);
  c.train.global_batch = 8 * mpi.world_size();
  c.train.steps = 6;
  std::string help;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!launch::parse_config(args, c, help)) {
    std::puts(help.c_str());
    return 0;
  }
  c.data.max_eval_samples = 0;
  auto grid = parallel::RankGrid::create(mpi.world(), c.parallel.tp);
  const double peak = gemm_gflops(2048, 10);
  launch::Trainer trainer(c, grid);
  trainer.step();  // warm-up (allocations, first-touch)
  const int64_t steps = c.train.steps - 1;
  int64_t tokens = 0;
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < steps; ++i) tokens += trainer.step().tokens;
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double tps = tokens / s;
  const double flops = core::flops_per_token(c.model, c.train.seq_len) * tps;
  if (mpi.rank() == 0) {
    std::printf(
        "{\"params\": %lld, \"world\": %d, \"threads\": %d, \"tokens_per_s\": %.1f, "
        "\"step_s\": %.3f, \"model_gflops\": %.1f, \"gemm_gflops_per_rank\": %.1f, "
        "\"mfu\": %.3f}\n",
        static_cast<long long>(core::parameter_count(c.model)), mpi.world_size(), mpi.threads(),
        tps, s / steps, flops / 1e9, peak, flops / 1e9 / (peak * mpi.world_size()));
  }
  return 0;
}
