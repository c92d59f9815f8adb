// Internal to the planner, shared by core/plan.cpp (layouts), core/plan_tensors.cpp (the model's
// tensors and the strategies' rules) and core/plan_calibration.cpp (the measured runs): the
// measured constants, the model's linear shapes and the strategy plan. Not part of the API; light
// includes only (no LibTorch).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model_config.h"
#include "core/plan.h"

namespace shardtune::core::plan_detail {

// ---- Calibration: every measured constant, in one place -------------------------------------
// Reference machine: AMD EPYC VM (Zen 5, AVX-512 BF16), 2 cores, 24 GiB, Debian 12, LibTorch 1.13,
// OpenBLAS (openmp), OPENBLAS_CORETYPE unset; measured 2026-12-01 (docs/benchmarks.md).

// GEMM peak, 2048² mm on 2 threads, measured by benchmarks/run.sh in its 2026-12-01 11:45 UTC run
// (docs/benchmarks.md "One command"): fp32 169, bf16 401 GFLOP/s for the 2 cores.
constexpr double kGemmGflopsPerCoreFp32 = 169.0 / 2;
constexpr double kGemmGflopsPerCoreBf16 = 401.0 / 2;

// Step times the compute efficiencies are derived from (efficiency(), core/plan.cpp): the ~30M
// llama at np=1, 2 threads, micro-batch 8, seq 256, recompute none, bench_train, 2026-12-01
// (docs/benchmarks.md "Compute options"): fp32 2.45 s, bf16 1.25 s per step.
constexpr double kMeasured30mFp32StepS = 2.45;
constexpr double kMeasured30mBf16StepS = 1.25;

// Resident set of a training process besides the modelled tensors (LibTorch, OpenBLAS, Open MPI,
// HDF5, allocator slack): fitted to the four 30M rows of docs/benchmarks.md "Compute options"
// (peak RSS minus every modelled term; the four give 258-274 MB, this is their mean).
constexpr double kProcessBaselineMb = 268;

// Activation memory of a block over its closed form (autograd's bookkeeping, transient buffers
// at the peak): the recomputation saving of the 30M rows (608 MB fp32, 324 MB bf16 for 7 of its 8
// blocks plus their fp32 inputs) over the closed form is 1.09 (fp32) and 1.10 (bf16).
constexpr double kActivationOverhead = 1.10;

// Bytes per logit held at the peak (per token and local vocabulary entry): fp32 keeps four
// logit-sized fp32 buffers (logits, the cross-entropy's probabilities, the logits' gradient and
// the LM head's backward transient), bf16 two bf16 ones (logits and their gradient); fitted to
// the 30M rows, where the head's share differs by 196 MB between fp32 and bf16.
constexpr double kLogitBytesFp32 = 16;
constexpr double kLogitBytesBf16 = 4;

// Fixed cost per collective (MPI call, waiting for the slowest rank): an assumption, 100 us; the
// TP=2 TinyLlama runs issue 137-246 per step, so it is 1-2% of their step time.
constexpr double kCollectiveLatencyS = 1e-4;

// All-reduce bus bandwidth inside the node: GradSync's bucketed all-reduce of the 30M llama's
// gradients at np=2, 2.60 GB/s (docs/benchmarks-comm.md "Bus bandwidth, current tree").
constexpr double kIntraNodeGbs = 2.6;
// Between nodes: not measured (one machine); 100 Gbit/s InfiniBand EDR assumed.
constexpr double kInterNodeGbs = 12.5;

// DP gradient buckets ([parallel] bucket_mb default): one latency each.
constexpr double kBucketBytes = 25.0 * 1024 * 1024;

constexpr double kMb = 1e6;

// ---- The model's tensors ----------------------------------------------------------------------

enum class Kind { kColumn, kRow, kReplicatedSum };

struct LinearShape {
  std::string path;    // module path, e.g. model.layers.3.self_attn.q_proj
  int64_t layer = -1;  // block index, -1 outside the blocks
  int64_t in = 0, out = 0;
  Kind kind = Kind::kColumn;
  int64_t parts = 1;
  bool bias = false;
};

// The strategy's choices, parsed with the strategies' own option names and defaults
// (strategies/*.h); checks that need the model are made here with the strategies' messages.
struct StrategyPlan {
  std::string name;
  // lora
  int64_t lora_r = 8;
  double lora_dropout = 0.05;
  std::vector<std::string> lora_targets;
  // ptuning-v2
  int64_t pre_seq_len = 0;
  bool projection = false;
  int64_t prefix_hidden = 512;
  // freeze
  int64_t freeze_layers = 2;
  std::vector<std::string> freeze_modules, freeze_extra;
};

// Defined in core/plan_tensors.cpp, where each is described.
StrategyPlan parse_strategy(const PlanWorkload& w);
std::vector<LinearShape> lora_targets(const StrategyPlan& s, const ModelConfig& c, int tp);
int64_t first_grad_layer(const StrategyPlan& s, const ModelConfig& c, int tp);
bool first_block_input_needs_grad(const StrategyPlan& s);

}  // namespace shardtune::core::plan_detail
