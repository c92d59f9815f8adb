#include "core/plan.h"

#include <algorithm>
#include <cmath>

#include "base/errors.h"
#include "base/strings.h"
#include "core/model.h"
#include "core/plan_detail.h"

namespace shardtune::core {

using namespace plan_detail;  // the constants, Kind, StrategyPlan and the strategies' rules

namespace {

double bytes_of(bool bf16) { return bf16 ? 2.0 : 4.0; }

// The compute efficiency (model FLOP/s over the GEMM peak) of a dtype on a rank of one core:
// derived from the measured step time of the 30M calibration run without recomputation (one rank
// of 2 cores) and the multi-core rank efficiency.
double efficiency(bool bf16) {
  auto from_row = [](size_t index, double step_s, double gflops_per_core, double multi_core) {
    const auto& row = plan_calibrations().at(index);
    const double flops =
        plan_flops_per_token(row.workload) * row.workload.global_batch * row.workload.seq_len;
    return flops / (step_s * 2 * gflops_per_core * 1e9) / multi_core;
  };
  static const double fp32 = from_row(0, kMeasured30mFp32StepS, kGemmGflopsPerCoreFp32,
                                      kMultiCoreRankEfficiencyFp32);
  static const double b16 = from_row(2, kMeasured30mBf16StepS, kGemmGflopsPerCoreBf16,
                                     kMultiCoreRankEfficiencyBf16);
  return bf16 ? b16 : fp32;
}

std::string layout_problem(const PlanWorkload& w, const PlanLayout& l) {
  try {
    require(l.zero == 0 || l.zero == 1, "[parallel] zero must be 0 or 1");
    validate_tp(w.model, l.tp);
    // launch::Config::validate's batch rules.
    require(w.global_batch % l.dp == 0, "[train] global_batch=" + std::to_string(w.global_batch) +
                                            " is not divisible by the data-parallel size " +
                                            std::to_string(l.dp));
    const int64_t per_rank = w.global_batch / l.dp;
    require(per_rank % w.micro_batch == 0, "[train] micro_batch=" + std::to_string(w.micro_batch) +
                                               " does not divide the per-rank batch " +
                                               std::to_string(per_rank) +
                                               " (global_batch / data-parallel size)");
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

PlanCluster reference_cluster() {
  PlanCluster c;
  c.cores_per_node = 2;
  c.gemm_gflops_per_core_fp32 = kGemmGflopsPerCoreFp32;
  c.gemm_gflops_per_core_bf16 = kGemmGflopsPerCoreBf16;
  c.intra_node_gbs = kIntraNodeGbs;
  c.inter_node_gbs = kInterNodeGbs;
  return c;
}

PlanRow plan_layout(const PlanWorkload& w, const PlanCluster& cluster, const PlanLayout& layout) {
  PlanRow row;
  row.layout = layout;
  row.invalid_reason = layout_problem(w, layout);
  row.valid = row.invalid_reason.empty();
  if (!row.valid) return row;
  const auto& c = w.model;
  const int tp = layout.tp, dp = layout.dp;
  const StrategyPlan s = parse_strategy(w);
  const double sz = bytes_of(w.bf16);

  // Memory.
  int64_t copies = 0;
  for (const auto& t : plan_tensors(w, tp)) {
    row.parameters += t.numel;
    if (t.trainable) row.trainable += t.numel;
    if (t.bf16_copy) copies += t.numel;
  }
  const double trainable = static_cast<double>(row.trainable);
  row.params_mb = (4.0 * static_cast<double>(row.parameters) +
                   (w.bf16 ? 2.0 * static_cast<double>(copies) : 0.0)) /
                  kMb;
  const bool zero = layout.zero == 1 && dp > 1;
  row.grads_mb = 4.0 * trainable * (zero ? 1.0 + 1.0 / dp : 1.0) / kMb;
  row.optimizer_mb = 8.0 * trainable / (layout.zero == 1 ? dp : 1) / kMb;

  const double h = c.hidden_size, T = static_cast<double>(w.seq_len);
  const double keys = static_cast<double>(w.seq_len + s.pre_seq_len);
  const double hl = std::ceil(h / tp),
               fl = std::ceil(static_cast<double>(c.intermediate_size) / tp);
  const double heads_l = std::ceil(static_cast<double>(c.num_heads) / tp);
  const double vocab_l = std::ceil(static_cast<double>(c.vocab_size) / tp);
  const int64_t first = first_grad_layer(s, c, tp);
  const double Lb = static_cast<double>(c.num_layers - first);
  // Per token and block: the fp32 residual stream read by the two norms; in the compute dtype the
  // two normed inputs (replicated), q, k and v (k/v repeated to the query heads, prefix keys
  // included), the attention output, the MLP's inputs/outputs (llama gate, up, SwiGLU; gpt2 fc,
  // GELU) and the attention probabilities of this rank's heads.
  const double mlp = c.family == "gpt2" ? 2.0 : 3.0;
  double block = 2 * h * 4 + sz * (2 * h + hl * (2 + 2 * keys / T) + mlp * fl + heads_l * keys);
  if (s.name == "lora") {
    // Adapters compute in fp32 on their input (widened from bf16, and dropped out): one fp32
    // copy each, plus the rank-r intermediate.
    const double copies_in = (w.bf16 ? 1 : 0) + (s.lora_dropout > 0 ? 1 : 0);
    double per_layer = 0;
    for (const auto& l : lora_targets(s, c, tp)) {
      const double in = l.kind == Kind::kRow ? std::ceil(static_cast<double>(l.in) / tp) : l.in;
      per_layer += copies_in * in * 4 + static_cast<double>(s.lora_r) * 4;
    }
    block += per_layer / static_cast<double>(c.num_layers);
  }
  const double head = h * 4 + sz * h + (w.bf16 ? kLogitBytesBf16 : kLogitBytesFp32) * vocab_l;
  const double micro_tokens = static_cast<double>(w.micro_batch * w.seq_len);
  const double layers_bytes = w.recompute
                                  ? (Lb > 0 ? kActivationOverhead * block + Lb * h * 4 : 0.0)
                                  : kActivationOverhead * block * Lb;
  row.activations_mb = micro_tokens * (layers_bytes + head) / kMb;
  row.baseline_mb = kProcessBaselineMb;
  row.total_mb =
      row.params_mb + row.grads_mb + row.optimizer_mb + row.activations_mb + row.baseline_mb;
  row.fits = cluster.memory_mb_per_rank <= 0 || row.total_mb <= cluster.memory_mb_per_rank;

  // Compute.
  const double tokens = static_cast<double>(w.global_batch * w.seq_len);
  row.flops = plan_flops_per_token(w) * tokens / (tp * dp);
  const double cores_per_rank = cluster.cores_per_node / cluster.ranks_per_node;
  const double multi_core =
      cores_per_rank > 1 ? (w.bf16 ? kMultiCoreRankEfficiencyBf16 : kMultiCoreRankEfficiencyFp32)
                         : 1.0;
  const double gflops =
      cores_per_rank *
      (w.bf16 ? cluster.gemm_gflops_per_core_bf16 : cluster.gemm_gflops_per_core_fp32) *
      efficiency(w.bf16) * multi_core;
  row.compute_s = row.flops / (gflops * 1e9);

  // TP all-reduces, as core/layers.cpp, core/llama.cpp / gpt2.cpp, the vocabulary-parallel loss
  // and LoRA issue them.
  if (tp > 1) {
    const double micros = static_cast<double>(w.global_batch / dp / w.micro_batch);
    const double fp32_act = micro_tokens * h * 4, dtype_act = micro_tokens * h * sz;
    double bytes = 0, calls = 0;
    auto ar = [&](double n, double b) {
      calls += n;
      bytes += n * b;
    };
    ar(1, fp32_act);                                      // embedding (g)
    ar(2 * static_cast<double>(c.num_layers), fp32_act);  // row-parallel outputs (g)
    ar(2 * Lb - (first_block_input_needs_grad(s) || Lb == 0 ? 0 : 1), dtype_act);  // f backward
    if (w.recompute) ar(2 * Lb, fp32_act);  // forward again in backward
    ar(1, dtype_act);                       // LM head input (f)
    ar(1, micro_tokens * 4);                // loss: row max
    ar(1, micro_tokens * 8);                // loss: sum-exp, target logit
    if (s.name == "lora") {
      for (const auto& l : lora_targets(s, c, tp)) {
        if (l.kind == Kind::kReplicatedSum) {
          ar(1, micro_tokens * l.in * 4);
          ar(2, static_cast<double>(s.lora_r * (l.in + l.out)) * 2);
        } else {
          ar(1, micro_tokens * static_cast<double>(s.lora_r) * 4);
        }
      }
    }
    // Replicated k/v (kv_heads % tp != 0): their trained weights' gradients are summed over TP.
    if (c.kv_heads() % tp != 0) {
      for (const auto& t : plan_tensors(w, tp)) {
        if (t.trainable && (base::ends_with(t.name, "k_proj.weight") ||
                            base::ends_with(t.name, "v_proj.weight"))) {
          ar(1, static_cast<double>(t.numel) * 4);
        }
      }
    }
    bytes *= micros;
    calls *= micros;
    ar(1, 8);  // the gradient norm
    row.tp_mb = bytes / kMb;
    row.tp_calls = static_cast<int64_t>(calls);
    const bool inside_node = tp <= cluster.ranks_per_node && cluster.ranks_per_node % tp == 0;
    const double bw = (inside_node ? cluster.intra_node_gbs : cluster.inter_node_gbs) * 1e9;
    row.tp_s = bytes * 2.0 * (tp - 1) / tp / bw + calls * kCollectiveLatencyS;
  }
  // DP: the fp32 gradient all-reduce (ZeRO-1: reduce-scatter + parameter all-gather, the same
  // volume), in buckets.
  if (dp > 1) {
    const double bytes = trainable * 4;
    row.dp_mb = bytes / kMb;
    const double bw = (cluster.nodes > 1 ? cluster.inter_node_gbs : cluster.intra_node_gbs) * 1e9;
    const double buckets = std::max(1.0, std::ceil(bytes / kBucketBytes));
    row.dp_s = bytes * 2.0 * (dp - 1) / dp / bw + buckets * (zero ? 2 : 1) * kCollectiveLatencyS;
  }
  row.step_s = row.compute_s + row.tp_s + row.dp_s;
  row.tokens_per_s = tokens / row.step_s;
  return row;
}

std::vector<PlanRow> plan_layouts(const PlanWorkload& w, const PlanCluster& cluster, int only_tp,
                                  int only_zero) {
  const int world = cluster.nodes * cluster.ranks_per_node;
  std::vector<PlanRow> rows;
  for (int tp = 1; tp <= world; ++tp) {
    if (world % tp != 0 || (only_tp > 0 && tp != only_tp)) continue;
    const int dp = world / tp;
    for (int zero : {0, 1}) {
      if (only_zero >= 0 ? zero != only_zero : (zero == 1 && dp == 1)) continue;
      rows.push_back(plan_layout(w, cluster, {tp, dp, zero}));
    }
  }
  return rows;
}

const PlanRow* recommended(const std::vector<PlanRow>& rows) {
  const PlanRow* best = nullptr;
  for (const auto& r : rows) {
    if (!r.valid || !r.fits) continue;
    if (!best || r.step_s < best->step_s - 1e-9 ||
        (std::abs(r.step_s - best->step_s) <= 1e-9 && r.total_mb < best->total_mb)) {
      best = &r;
    }
  }
  return best;
}

}  // namespace shardtune::core
