// The measured runs the planner's constants come from and are checked against:
// plan_calibrations() and plan_calibration_markdown() of core/plan.h.
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/plan.h"
#include "core/plan_detail.h"

namespace shardtune::core {

using plan_detail::kMeasured30mBf16StepS;
using plan_detail::kMeasured30mFp32StepS;

ModelConfig llama30m_model() {
  ModelConfig m;
  m.family = "llama";
  m.vocab_size = 8192;
  m.hidden_size = 512;
  m.num_layers = 8;
  m.num_heads = 8;
  m.intermediate_size = 1376;
  m.max_position_embeddings = 256;
  return m;
}

const std::vector<PlanCalibration>& plan_calibrations() {
  static const std::vector<PlanCalibration> rows = [] {
    // The ~30M llama of benchmarks/run.sh and bench_train (benchmarks/bench_config.h).
    PlanWorkload m30;
    m30.model = llama30m_model();
    m30.global_batch = 8;
    m30.micro_batch = 8;
    m30.seq_len = 256;
    // benchmarks/configs/tinyllama_*.ini (tests/test_plan.cpp checks they still say this).
    PlanWorkload tiny;
    tiny.model.family = "llama";
    tiny.model.vocab_size = 32000;
    tiny.model.hidden_size = 2048;
    tiny.model.num_layers = 22;
    tiny.model.num_heads = 32;
    tiny.model.num_kv_heads = 4;
    tiny.model.intermediate_size = 5632;
    tiny.model.max_position_embeddings = 2048;
    tiny.global_batch = 1;
    tiny.micro_batch = 1;
    tiny.seq_len = 512;
    tiny.bf16 = true;
    const PlanCluster one_rank = reference_cluster();  // 2 cores, one rank
    PlanCluster two_ranks = reference_cluster();
    two_ranks.ranks_per_node = 2;
    // Every row: docs/benchmarks.md "Planner calibration" (one session, one build, the same
    // environment).
    const std::string compute = "docs/benchmarks.md, Planner calibration (bench_train, 2026-12-02)";
    std::vector<PlanCalibration> out;
    auto add = [&](std::string name, PlanWorkload w, const PlanCluster& cl, PlanLayout l,
                   double step_s, double mb, std::string source) {
      out.push_back({std::move(name), std::move(w), cl, l, step_s, mb, std::move(source)});
    };
    auto with = [](PlanWorkload w, bool bf16, bool recompute, int64_t global_batch) {
      w.bf16 = bf16;
      w.recompute = recompute;
      w.global_batch = global_batch;
      return w;
    };
    // Rows 0 and 2 are the efficiencies' source (efficiency() reads them by index).
    add("30M llama, fp32, recompute none, np=1", with(m30, false, false, 8), one_rank, {1, 1, 0},
        kMeasured30mFp32StepS, 1644, compute);
    add("30M llama, fp32, recompute block, np=1", with(m30, false, true, 8), one_rank, {1, 1, 0},
        2.18, 1088, compute);
    add("30M llama, bf16, recompute none, np=1", with(m30, true, false, 8), one_rank, {1, 1, 0},
        kMeasured30mBf16StepS, 1309, compute);
    add("30M llama, bf16, recompute block, np=1", with(m30, true, true, 8), one_rank, {1, 1, 0},
        1.33, 1019, compute);
    // 6-step runs as benchmarks/run.sh makes them: tokens/s of 2,048-token steps per rank -> step
    // time = tokens per step / tokens/s. The np=1 / np=2 pairs are the multi-core rank
    // efficiency's source (core/plan_detail.h).
    add("30M llama, fp32, np=1 (6 steps)", with(m30, false, false, 8), one_rank, {1, 1, 0},
        2048 / 1342.7, 0, compute);
    add("30M llama, bf16, np=1 (6 steps)", with(m30, true, false, 8), one_rank, {1, 1, 0},
        2048 / 2106.1, 0, compute);
    add("30M llama, fp32, np=2 TP=1 DP=2 (6 steps)", with(m30, false, false, 16), two_ranks,
        {1, 2, 0}, 4096 / 1415.8, 0, compute);
    add("30M llama, bf16, np=2 TP=1 DP=2 (6 steps)", with(m30, true, false, 16), two_ranks,
        {1, 2, 0}, 4096 / 2438.7, 0, compute);
    PlanWorkload lora = tiny;
    lora.strategy = "lora";
    lora.strategy_options = {
        {"r", "16"}, {"alpha", "32"}, {"dropout", "0"}, {"target_modules", "all-linear"}};
    add("TinyLlama-1.1B, LoRA r=16 all-linear, bf16, np=2 TP=2", lora, two_ranks, {2, 1, 0}, 5.17,
        5432, compute);
    PlanWorkload sft = tiny;
    sft.recompute = true;
    add("TinyLlama-1.1B, SFT, bf16, recompute block, np=2 TP=2", sft, two_ranks, {2, 1, 0}, 10.05,
        10812, compute);
    return out;
  }();
  return rows;
}

std::string plan_calibration_markdown() {
  auto fmt = [](const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return std::string(buf);
  };
  auto err = [&](double predicted, double measured) {
    const double percent = 100.0 * (predicted - measured) / measured;
    return std::abs(percent) < 0.05 ? std::string("0.0%") : fmt("%+.1f%%", percent);
  };
  std::ostringstream md;
  md << "| run | layout | predicted MB/rank | measured MB/rank | error | predicted s/step | "
        "measured s/step | error |\n"
     << "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& c : plan_calibrations()) {
    const PlanRow r = plan_layout(c.workload, c.cluster, c.layout);
    md << "| " << c.name << " | tp=" << c.layout.tp << " dp=" << c.layout.dp
       << " zero=" << c.layout.zero << " | " << fmt("%.0f", r.total_mb) << " | "
       << (c.measured_mb > 0 ? fmt("%.0f", c.measured_mb) : "-") << " | "
       << (c.measured_mb > 0 ? err(r.total_mb, c.measured_mb) : "-") << " | "
       << fmt("%.2f", r.step_s) << " | " << fmt("%.2f", c.measured_step_s) << " | "
       << err(r.step_s, c.measured_step_s) << " |\n";
  }
  return md.str();
}

}  // namespace shardtune::core
