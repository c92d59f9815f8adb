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
// OpenBLAS (openmp), OPENBLAS_CORETYPE unset, the caching CPU allocator installed (as in every
// run); measured 2026-12-02 (docs/benchmarks.md "Planner calibration").

// GEMM peak, 2048² product on 2 threads (benchmarks/run.sh's measurement, 3 runs, medians,
// 2026-12-02): fp32 371 (360-376) GFLOP/s, oneDNN's sgemm, which fp32 linear layers run on
// (LibTorch's mm through OpenBLAS: 345-356), bf16 498 (455-631) GFLOP/s for the 2 cores.
constexpr double kGemmGflopsPerCoreFp32 = 371.0 / 2;
constexpr double kGemmGflopsPerCoreBf16 = 498.0 / 2;

// Step times the compute efficiencies are derived from (efficiency(), core/plan.cpp): the ~30M
// llama at np=1, 2 threads, micro-batch 8, seq 256, recompute none, bench_train, medians of 3,
// 2026-12-02: fp32 1.53 s (fp32 GEMMs on oneDNN), bf16 1.05 s per step.
constexpr double kMeasured30mFp32StepS = 1.53;
constexpr double kMeasured30mBf16StepS = 1.05;

// A rank computing on several cores gets less than that many times one core's throughput (the
// element-wise ops, norms and small GEMMs of a step scale worse than large GEMMs). Measured on
// the 30M llama with 6-step bench_train runs, medians of 3: np=1 with 2 threads 1,342.7 (fp32) and
// 2,106.1 (bf16) tokens/s; np=2 data-parallel with 1 thread per rank 707.9 and 1,219.4 per rank.
// Per-core efficiency of a multi-core rank relative to a one-core rank: 1342.7 / (2 x 707.9) and
// 2106.1 / (2 x 1219.4). Only 1 and 2 cores per rank could be measured here; a rank of many
// cores is assumed to keep the 2-core figure.
constexpr double kMultiCoreRankEfficiencyFp32 = 0.948;
constexpr double kMultiCoreRankEfficiencyBf16 = 0.864;

// Resident set of a training process besides the modelled tensors (LibTorch, OpenBLAS, Open MPI,
// HDF5, allocator slack): fitted 2026-12-01 to the four 30M rows (peak RSS minus every modelled
// term; the four gave 258-274 MB, this is their mean). Kept at the re-measurement of 2026-12-02
// with the caching allocator: the six measured rows are then within -5.0% and +2.9%, centred on 0.
constexpr double kProcessBaselineMb = 268;

// Activation memory of a block over its closed form (autograd's bookkeeping, transient buffers
// at the peak): the recomputation saving of the 30M rows (608 MB fp32, 324 MB bf16 for 7 of its 8
// blocks plus their fp32 inputs) over the closed form is 1.09 (fp32) and 1.10 (bf16).
constexpr double kActivationOverhead = 1.10;

// Bytes per logit held at the peak (per token and local vocabulary entry): two logit-sized
// buffers in the compute dtype, the logits (which the fused cross-entropy saves) and their
// gradient. The glibc-era fit (2026-12-01) was 16 B in fp32, four buffers, because freed ones
// were not reused at the peak; with the caching allocator the 30M fp32 rows' peaks fell by 170 and
// 118 MB and 8 B fits them (+2.8% and -1.1%; 16 B would give +11% and +11%).
constexpr double kLogitBytesFp32 = 8;
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
