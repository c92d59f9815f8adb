// The planner behind `shardtune plan` (launch/cmd_plan.h): for one training configuration, the
// memory each rank needs and the time of one optimizer step under every tensor x data parallel
// layout of a cluster, which layouts fit a memory budget, and the fastest one that fits.
//
// Pure: closed forms over the model shape plus constants measured on the reference machine (each
// with where and when it was measured, core/plan_detail.h); no tensors are allocated and no rank
// talks to another. What it models (docs/planning.md says what it does not):
//   memory per rank   fp32 parameters (this rank's TP shard, vocabulary padding included) and, with
//                     bf16, the bf16 copies of the linear weights; fp32 gradients of the trainable
//                     parameters; AdamW's two fp32 moments per trainable parameter (ZeRO-1: / dp,
//                     plus the reduce-scattered gradient shard); activations of one micro-batch
//                     (per-layer closed form, without or with block recomputation, TP-sharded parts
//                     / tp); a fixed process baseline (LibTorch + MPI + HDF5 resident set).
//   step time         model FLOPs of the step on this rank (forward 2N, input gradients 2N where
//                     backward passes, weight gradients 2N of the trainable matrices, attention,
//                     recomputation's extra forward) at a GEMM rate per core x a measured
//                     efficiency per dtype; plus the TP all-reduces that core/layers.cpp issues
//                     (counted per collective: forward 2 per block, backward 2 per block,
//                     recomputation 2 per block, embedding, LM head, LoRA's rank-r ones, the loss)
//                     and the DP gradient all-reduce (ring: 2 (n-1)/n of the bytes) over the intra-
//                     or inter-node bandwidth, not overlapped with compute.
//
// Example (the ~30M llama of benchmarks/run.sh, one node of 2 cores, 2 ranks):
//     PlanWorkload w;  w.model = ...;  w.global_batch = 16;  w.micro_batch = 8;  w.seq_len = 256;
//     PlanCluster c = reference_cluster();  c.ranks_per_node = 2;
//     auto rows = plan_layouts(w, c);       // tp=1 dp=2 zero 0/1, tp=2 dp=1
//     const PlanRow* best = recommended(rows);
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/model_config.h"

namespace shardtune::core {

// What is trained and how ([model], [train], [strategy] of a run configuration).
struct PlanWorkload {
  ModelConfig model;
  int64_t global_batch = 8;  // samples per optimizer step over all DP ranks
  int64_t micro_batch = 8;   // samples per forward/backward per rank
  int64_t seq_len = 128;
  bool bf16 = false;                                    // [train] dtype = bf16
  bool recompute = false;                               // [train] recompute = block
  std::string strategy = "sft";                         // sft | lora | ptuning-v2 | freeze
  std::map<std::string, std::string> strategy_options;  // [strategy.<name>] (core::StrategyOptions)
};

// The machines: nodes of identical cores; ranks placed node by node (ranks 0..R-1 on node 0).
struct PlanCluster {
  int nodes = 1;
  int ranks_per_node = 1;
  double cores_per_node = 1;
  double gemm_gflops_per_core_fp32 = 0;  // GEMM peak of one core (2048² mm)
  double gemm_gflops_per_core_bf16 = 0;
  double intra_node_gbs = 0;      // all-reduce bus bandwidth inside a node, GB/s (1e9 bytes/s)
  double inter_node_gbs = 0;      // between nodes
  double memory_mb_per_rank = 0;  // budget; <= 0: no limit (everything fits)
};

// The reference machine (core/plan_detail.h: a 2-core AMD EPYC VM, measured 2026-12-01), one
// node, one rank, no memory budget; inter-node bandwidth 12.5 GB/s (100 Gbit/s) is assumed, not
// measured.
PlanCluster reference_cluster();

// The ~30M llama the benchmarks train (benchmarks/bench_config.h) and the calibration measured:
// hidden 512, 8 layers, 8 heads, ffn 1376, vocab 8192, 256 positions.
ModelConfig llama30m_model();

struct PlanLayout {
  int tp = 1;
  int dp = 1;
  int zero = 0;  // ZeRO stage: 0 or 1
};

// One parameter tensor as this rank holds it.
struct PlanTensor {
  std::string name;   // Hugging Face name, as the model registers it
  int64_t numel = 0;  // local elements (TP shard, padding included)
  bool trainable = false;
  bool bf16_copy = false;  // a linear weight (or tied embedding): bf16 compute keeps a bf16 copy
};

// Every parameter tensor of the model after the workload's strategy is applied, as TP rank 0 of
// `tp` holds it. UserError naming the option for strategy options that do not fit the model.
std::vector<PlanTensor> plan_tensors(const PlanWorkload& workload, int tp);

// One layout's estimate. Sizes in MB (1e6 bytes) per rank.
struct PlanRow {
  PlanLayout layout;
  bool valid = true;
  std::string invalid_reason;  // why the layout cannot run (the config check's message)
  int64_t parameters = 0;      // this rank's parameter elements
  int64_t trainable = 0;       // of which trainable
  double params_mb = 0;        // fp32 parameters + bf16 copies of the linear weights
  double grads_mb = 0;
  double optimizer_mb = 0;
  double activations_mb = 0;
  double baseline_mb = 0;  // process baseline
  double total_mb = 0;
  bool fits = true;
  double flops = 0;  // per rank per step
  double compute_s = 0;
  double tp_mb = 0;      // TP all-reduce payload per step
  int64_t tp_calls = 0;  // TP all-reduces per step
  double tp_s = 0;
  double dp_mb = 0;  // DP gradient payload per step
  double dp_s = 0;
  double step_s = 0;
  double tokens_per_s = 0;  // global tokens / step_s
};

// The estimate for one layout (tp * dp ranks of `cluster`). A layout that cannot run is returned
// with valid = false and the reason; its figures are not computed.
PlanRow plan_layout(const PlanWorkload& workload, const PlanCluster& cluster,
                    const PlanLayout& layout);

// Every layout of nodes * ranks_per_node ranks: tp over the divisors of the world size (only
// `only_tp` when > 0), zero 0 and 1 when dp > 1 (only `only_zero` when >= 0), ordered by tp,
// then zero.
std::vector<PlanRow> plan_layouts(const PlanWorkload& workload, const PlanCluster& cluster,
                                  int only_tp = 0, int only_zero = -1);

// The fastest valid row that fits (ties: less memory); nullptr when none does.
const PlanRow* recommended(const std::vector<PlanRow>& rows);

// Model FLOPs of one token's forward and backward as the planner counts them for `workload` on
// one rank (the whole model, TP = 1); equals core::flops_per_token for sft without recomputation.
double plan_flops_per_token(const PlanWorkload& workload);

// The measured runs the constants come from and are checked against (docs/planning.md).
struct PlanCalibration {
  std::string name;  // "30M llama fp32, recompute none"
  PlanWorkload workload;
  PlanCluster cluster;
  PlanLayout layout;
  double measured_step_s = 0;
  double measured_mb = 0;  // peak RSS per rank (max over ranks); 0 = not measured
  std::string source;      // where the measurement is recorded
};
const std::vector<PlanCalibration>& plan_calibrations();

// The predicted-vs-measured table of plan_calibrations() in Markdown (docs/planning.md holds it;
// tests/test_plan.cpp checks that it is current).
std::string plan_calibration_markdown();

}  // namespace shardtune::core
