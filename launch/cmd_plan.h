// `shardtune plan`: which tensor x data parallel layouts of a cluster can run a configuration,
// the memory each rank needs and the step time of each, and the fastest layout that fits
// (core/plan.h computes; docs/planning.md says what it models and how well it matches).
//
//   shardtune plan --config FILE [--section.key=value ...] --nodes N --ranks-per-node R
//                  [--tp T] [--zero 0|1] [--memory-gb G] [--cores-per-node C]
//                  [--gflops-fp32 F] [--gflops-bf16 F] [--intra-gbs B] [--inter-gbs B]
//                  [--format table|csv]
//   shardtune plan --calibration
//       the predicted-vs-measured table of the runs the planner's constants come from (Markdown)
//
// Standalone: one process, no MPI, no tensors. [model], [train] (batches, seq_len, dtype,
// recompute) and [strategy] come from the configuration; [parallel] tp and zero are ignored (the
// planner tries every layout, or --tp / --zero).
#pragma once

#include <string>
#include <vector>

#include "core/plan.h"

namespace shardtune::launch {

struct Config;

// `args` are the words after `plan`. Returns the exit code: 0, or kUserErrorExitCode after one
// error line naming the option (a bad number, --tp that does not divide the world or the model,
// an unreadable or invalid configuration).
int run_plan(const std::vector<std::string>& args);

// What the planner models of a configuration: [model], the batches, seq_len, dtype, recompute
// and the strategy with its options. bench_train uses it (recompute off) for model FLOPs per token.
core::PlanWorkload plan_workload(const Config& config);

// The usage text with every option and its default (`shardtune plan --help`, docs/cli.md).
std::string plan_usage();

}  // namespace shardtune::launch
