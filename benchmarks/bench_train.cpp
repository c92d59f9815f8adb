// Training throughput benchmark: tokens/s and MFU of a ShardTune training step against the GEMM
// rate (in the run's dtype) this machine reaches, measured in the same run; under mpirun also the
// layout (--parallel.tp, dp = world / tp), peak memory per rank and the communication volume of a
// step on each axis next to the Megatron formula (docs/benchmarks.md, docs/parallelism.md).
//
//   [mpirun -np N] bench_train [--config FILE.ini] [--section.key=value ...]
// Defaults: the issue's ~30M llama (hidden 512, 8 layers, 8 heads, ffn 1376, vocab 8192,
// seq 256, micro-batch 8 per data-parallel rank) on synthetic tokens. Prints one JSON line.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_config.h"
#include "counting_communicator.h"
#include "core/kernels/fused_ops.h"
#include "core/model_config.h"
#include "launch/bootstrap.h"
#include "launch/cmd_plan.h"
#include "launch/config.h"
#include "launch/trainer.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"

using namespace shardtune;
using Clock = std::chrono::steady_clock;

namespace {

// GEMM rate of an n x n product in the run's dtype, the peak that MFU divides by. fp32: the faster
// of LibTorch's mm (the BLAS) and oneDNN's sgemm, which the training step's fp32 linear layers use
// (core/kernels/fused_ops.h); bf16: LibTorch's bf16 mm (oneDNN), which its bf16 products use.
double gemm_gflops(int64_t n, int reps, bool bf16) {
  const auto opts = torch::TensorOptions().dtype(bf16 ? torch::kBFloat16 : torch::kFloat);
  auto a = torch::randn({n, n}).to(opts);
  auto b = torch::randn({n, n}).to(opts);
  double best = 0;
  for (bool onednn : {false, true}) {
    if (onednn && bf16) break;
    auto mm = [&] { return onednn ? kernels::mm_f32(a, b) : torch::mm(a, b); };
    auto c = mm();  // warm-up
    const auto t0 = Clock::now();
    for (int i = 0; i < reps; ++i) c = mm();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, 2.0 * n * n * n * reps / s / 1e9);
  }
  return best;
}

// Peak resident set of this process (VmHWM), bytes.
int64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string key;
  while (f >> key) {
    if (key == "VmHWM:") {
      int64_t kb = 0;
      f >> kb;
      return kb * 1024;
    }
    std::getline(f, key);
  }
  return -1;
}

std::string counts_json(const bench::CountingCommunicator* c, int64_t steps) {
  std::string s = "{";
  if (c) {
    bool first = true;
    for (const auto& [op, n] : c->counts()) {
      s += (first ? "\"" : ", \"") + op + "\": {\"calls_per_step\": " +
           std::to_string(n.calls / steps) + ", \"mb_per_step\": " +
           std::to_string(static_cast<double>(n.bytes) / steps / 1e6) + "}";
      first = false;
    }
  }
  return s + "}";
}

}  // namespace

int main(int argc, char** argv) {
  launch::MpiRuntime mpi(&argc, &argv);
  launch::Config c = bench::llama30m_config("runs/bench", /*seq_len=*/256, /*micro_batch=*/8);
  c.train.steps = 6;
  std::string help;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!launch::parse_config(args, c, help)) {
    std::puts(help.c_str());
    return 0;
  }
  c.data.max_eval_samples = 0;
  const int dp = mpi.world_size() / std::max(1, c.parallel.tp);
  if (std::none_of(args.begin(), args.end(), [](const std::string& a) {
        return a.rfind("--train.global_batch", 0) == 0;
      })) {
    c.train.global_batch = c.train.micro_batch * dp;
  }
  // Axes wrap counting decorators around the MPI splits, so a step's traffic is measured.
  bench::CountingCommunicator* tp_count = nullptr;
  bench::CountingCommunicator* dp_count = nullptr;
  auto world = mpi.world();
  parallel::RankGrid grid =
      mpi.world_size() == 1
          ? parallel::RankGrid::create(world, c.parallel.tp)
          : parallel::RankGrid(world, c.parallel.tp,
                               [&](int color, int key, const std::string& label) {
                                 auto counted = std::make_shared<bench::CountingCommunicator>(
                                     world->split(color, key, label));
                                 (label == "tp" ? tp_count : dp_count) = counted.get();
                                 return std::shared_ptr<parallel::Communicator>(counted);
                               });
  const bool bf16 = c.train.dtype == "bf16";
  const double peak = gemm_gflops(2048, 10, bf16);
  launch::Trainer trainer(c, grid);
  trainer.step();  // warm-up (allocations, first-touch)
  if (tp_count) tp_count->reset();
  if (dp_count) dp_count->reset();
  const int64_t steps = c.train.steps - 1;
  int64_t tokens = 0;
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < steps; ++i) tokens += trainer.step().tokens;
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double tps = tokens / s;
  // Model FLOPs (MFU, not hardware FLOPs): the strategy's own count, so LoRA and Freeze get no
  // weight gradients of frozen matrices, and without the recomputed forward.
  core::PlanWorkload model_work = launch::plan_workload(c);
  model_work.recompute = false;
  const double flops = core::plan_flops_per_token(model_work) * tps;
  // Peak memory: this rank's and the largest over ranks.
  auto rss = torch::tensor({static_cast<double>(peak_rss_bytes())}, torch::kDouble);
  const double own_rss = rss.item<double>();
  grid.world().all_reduce(rss, parallel::ReduceOp::kMax);
  // Megatron's TP volume (Narayanan et al. 2021; Korthikanti et al. 2022): per layer and
  // micro-batch, 2 all-reduces of b*s*h in forward and 2 in backward.
  const auto& m = c.model;
  const double micro_tokens = static_cast<double>(c.train.micro_batch * c.train.seq_len);
  const int64_t micros = c.train.global_batch / dp / c.train.micro_batch;
  const double megatron_tp_mb =
      grid.dims().tp > 1 ? 4.0 * m.num_layers * micro_tokens * m.hidden_size * 4 * micros / 1e6 : 0.0;
  if (mpi.rank() == 0) {
    std::printf(
        "{\"params\": %lld, \"world\": %d, \"tp\": %d, \"dp\": %d, \"threads\": %d, "
        "\"global_batch\": %lld, \"tokens_per_s\": %.1f, \"step_s\": %.3f, "
        "\"model_gflops\": %.1f, \"gemm_dtype\": \"%s\", \"gemm_gflops_per_rank\": %.1f, "
        "\"mfu\": %.3f, "
        "\"peak_rss_mb_rank0\": %.1f, \"peak_rss_mb_max\": %.1f, \"tp_comm\": %s, "
        "\"tp_megatron_allreduce_mb_per_step\": %.2f, \"dp_comm\": %s}\n",
        static_cast<long long>(core::parameter_count(c.model)), mpi.world_size(), grid.dims().tp,
        grid.dims().dp, mpi.threads(), static_cast<long long>(c.train.global_batch), tps,
        s / steps, flops / 1e9, bf16 ? "bf16" : "fp32", peak,
        flops / 1e9 / (peak * mpi.world_size()), own_rss / 1e6, rss.item<double>() / 1e6,
        counts_json(tp_count, steps).c_str(), megatron_tp_mb,
        counts_json(dp_count, steps).c_str());
  }
  return 0;
}
