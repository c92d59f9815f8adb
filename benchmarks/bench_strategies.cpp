// Strategy benchmark: for one strategy on a given base model, task and step budget, prints one JSON
// line with trainable parameters, optimizer-state bytes, peak resident memory of this rank (VmHWM
// from /proc/self/status: a process-lifetime peak, hence one process per strategy, see
// run_strategies_bench.sh), mean step time and the held-out loss before and after.
//
//   bench_strategies [--config FILE.ini] [--section.key=value ...]
// Defaults: a ~0.8M-parameter llama (hidden 128, 4 layers, 4 heads, 2 kv heads, ffn 344, untied
// byte vocabulary) on the WordNet "define: WORD" task, seq 64, global batch 16, 40 steps (small
// enough to run on a shared 2-core machine; the ratios between strategies are the point).
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/strategy.h"
#include "launch/bootstrap.h"
#include "launch/config.h"
#include "launch/trainer.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"

using namespace shardtune;
using Clock = std::chrono::steady_clock;

namespace {

int64_t vm_hwm_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

}  // namespace

int run(launch::MpiRuntime& mpi, int argc, char** argv);

int main(int argc, char** argv) {
  launch::MpiRuntime mpi(&argc, &argv);
  try {
    return run(mpi, argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_strategies: error: %s\n", e.what());
    return 2;
  }
}

int run(launch::MpiRuntime& mpi, int argc, char** argv) {
  launch::Config c;
  c.model.family = "llama";
  c.model.vocab_size = 260;
  c.model.hidden_size = 128;
  c.model.num_layers = 4;
  c.model.num_heads = 4;
  c.model.num_kv_heads = 2;
  c.model.intermediate_size = 344;
  c.model.max_position_embeddings = 128;
  c.data.source = "wordnet";
  c.data.wordnet_task = "define";
  c.data.max_eval_samples = 128;
  c.train.seq_len = 64;
  c.train.global_batch = 16;
  c.train.micro_batch = 16 / mpi.world_size();
  c.train.steps = 40;
  c.train.lr = 1e-3;
  c.train.warmup_steps = 4;
  c.train.log_every = 1000;
  c.train.out_dir = "runs/bench-strategies";
  c.checkpoint.save_final = false;
  std::string help;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!launch::parse_config(args, c, help)) {
    std::puts(help.c_str());
    return 0;
  }
  auto grid = parallel::RankGrid::create(mpi.world(), c.parallel.tp);
  launch::Trainer trainer(c, grid);
  const auto counts = core::count_parameters(trainer.model());
  const double before = trainer.evaluate().loss;
  trainer.step();  // warm-up (allocations, first touch); counted in the step budget
  const auto t0 = Clock::now();
  while (trainer.steps_done() < c.train.steps) trainer.step();
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double after = trainer.evaluate().loss;
  if (c.checkpoint.save_final) trainer.save();  // the base-model pass of run_strategies_bench.sh
  nlohmann::json out = {{"strategy", c.strategy},
                        {"options", c.strategy_options},
                        {"layout", "tp=" + std::to_string(grid.dims().tp) +
                                       ",dp=" + std::to_string(grid.dims().dp)},
                        {"trainable_params_rank", counts.trainable},
                        {"total_params_rank", counts.total},
                        {"optimizer_state_bytes_rank", trainer.optimizer_state_bytes()},
                        {"peak_rss_mib_rank", vm_hwm_kib() / 1024.0},
                        {"step_s", s / static_cast<double>(c.train.steps - 1)},
                        {"steps", c.train.steps},
                        {"eval_loss_before", before},
                        {"eval_loss_after", after}};
  if (mpi.rank() == 0) std::puts(out.dump().c_str());
  return 0;
}
