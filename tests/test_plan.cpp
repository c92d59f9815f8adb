// The planner (core/plan.h) and `shardtune plan`: parameter counts against really built models
// (every strategy, TP 1, 2 and 4 with kv heads split and replicated), the memory terms' closed
// forms (ZeRO-1, TP, recomputation, bf16), the TP collectives against the counts measured on the
// TinyLlama runs, fitting and the recommendation, the CLI's errors, and docs/planning.md's table
// against what the planner prints now.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "base/errors.h"
#include "base/strings.h"
#include "cli_helpers.h"
#include "core/model.h"
#include "core/plan.h"
#include "core/strategy.h"
#include "launch/cmd_plan.h"
#include "launch/config.h"
#include "parallel/communicator.h"
#include "strategies/registry.h"
#include "train_helpers.h"

using namespace shardtune;
using namespace shardtune::testing;

namespace {

// A TP group member that never communicates: building a model shard and applying a strategy are
// local (initialisation slices full tensors drawn from named seeds).
class FakeComm final : public parallel::Communicator {
 public:
  FakeComm(int rank, int size) : Communicator(rank, size, "tp") {}
  std::string backend() const override { return "fake"; }
  parallel::WorkPtr all_reduce_async(torch::Tensor&, parallel::ReduceOp) override {
    ADD_FAILURE() << "communication while building";
    return nullptr;
  }
  parallel::WorkPtr all_gather_async(torch::Tensor&, const torch::Tensor&) override {
    ADD_FAILURE() << "communication while building";
    return nullptr;
  }
  parallel::WorkPtr reduce_scatter_async(torch::Tensor&, const torch::Tensor&,
                                         parallel::ReduceOp) override {
    ADD_FAILURE() << "communication while building";
    return nullptr;
  }
  parallel::WorkPtr broadcast_async(torch::Tensor&, int) override {
    ADD_FAILURE() << "communication while building";
    return nullptr;
  }
  void barrier() override {}
};

core::ModelConfig llama() { return tiny_config("unused").model; }  // kv heads 2 of 4

core::ModelConfig llama_tied_bias() {
  auto c = llama();
  c.tie_word_embeddings = true;
  c.attention_bias = true;
  c.num_kv_heads = 0;
  c.vocab_size = 259;  // not a multiple of tp: padding rows
  return c;
}

core::ModelConfig gpt2() {
  core::ModelConfig c;
  c.family = "gpt2";
  c.vocab_size = 261;
  c.hidden_size = 32;
  c.num_layers = 3;
  c.num_heads = 4;
  c.intermediate_size = 64;
  c.max_position_embeddings = 64;
  return c;
}

core::PlanWorkload workload(const core::ModelConfig& m, const std::string& strategy = "sft",
                            std::map<std::string, std::string> options = {}) {
  core::PlanWorkload w;
  w.model = m;
  w.global_batch = 8;
  w.micro_batch = 4;
  w.seq_len = 48;
  w.strategy = strategy;
  w.strategy_options = std::move(options);
  return w;
}

// The real model shard of TP rank 0 of `tp` with the strategy applied: name -> (numel, trainable).
std::map<std::string, std::pair<int64_t, bool>> real_tensors(const core::PlanWorkload& w, int tp,
                                                             core::ParameterCounts* counts) {
  parallel::TpGroup group;
  if (tp > 1) group.comm = std::make_shared<FakeComm>(0, tp);
  auto model = core::build_model(w.model, 3, group);
  auto s = strategies::make_strategy(w.strategy, w.strategy_options);
  s->set_seed(5);
  s->apply(*model);
  *counts = core::count_parameters(*model);
  std::map<std::string, std::pair<int64_t, bool>> out;
  for (const auto& item : model->named_parameters()) {
    out[item.key()] = {item.value().numel(), item.value().requires_grad()};
  }
  return out;
}

struct Case {
  std::string label;
  core::ModelConfig model;
  std::string strategy;
  std::map<std::string, std::string> options;
};

std::vector<Case> cases() {
  return {
      {"llama sft", llama(), "sft", {}},
      {"llama tied+bias sft", llama_tied_bias(), "sft", {}},
      {"gpt2 sft", gpt2(), "sft", {}},
      {"llama lora default", llama(), "lora", {}},
      {"llama lora all-linear r4", llama(), "lora", {{"r", "4"}, {"target_modules", "all-linear"}}},
      {"llama tied lora o,down",
       llama_tied_bias(),
       "lora",
       {{"target_modules", "o_proj,down_proj,k_proj"}}},
      {"gpt2 lora default", gpt2(), "lora", {}},
      {"gpt2 lora c_proj", gpt2(), "lora", {{"target_modules", "c_proj"}, {"r", "2"}}},
      {"llama ptuning", llama(), "ptuning-v2", {{"pre_seq_len", "5"}}},
      {"llama ptuning projection",
       llama(),
       "ptuning-v2",
       {{"prefix_projection", "true"}, {"prefix_hidden_size", "16"}, {"pre_seq_len", "3"}}},
      {"gpt2 ptuning", gpt2(), "ptuning-v2", {}},
      {"llama freeze default", llama(), "freeze", {}},
      {"llama freeze first mlp + embed",
       llama(),
       "freeze",
       {{"trainable_layers", "-1"},
        {"trainable_modules", "mlp"},
        {"extra_modules", "embed_tokens,norm"}}},
      {"llama tied freeze embed",
       llama_tied_bias(),
       "freeze",
       {{"trainable_layers", "0"}, {"extra_modules", "embed_tokens"}}},
      {"gpt2 freeze attn + wpe",
       gpt2(),
       "freeze",
       {{"trainable_layers", "2"}, {"trainable_modules", "attn"}, {"extra_modules", "wpe,ln_f"}}},
  };
}

core::PlanCluster one_node(int ranks) {
  auto c = core::reference_cluster();
  c.ranks_per_node = ranks;
  c.cores_per_node = 2.0 * ranks;
  return c;
}

const core::PlanRow& row_of(const std::vector<core::PlanRow>& rows, int tp, int zero) {
  for (const auto& r : rows) {
    if (r.layout.tp == tp && r.layout.zero == zero) return r;
  }
  throw std::runtime_error("no row");
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

// ---- parameter counts against real models ---------------------------------------------------

TEST(PlanTensors, EqualTheRealModelForEveryStrategyAndTpSize) {
  for (const auto& c : cases()) {
    // tp 4 replicates the llama's 2 kv heads (kv_heads % tp != 0); gpt2's 4 heads split.
    for (int tp : {1, 2, 4}) {
      SCOPED_TRACE(c.label + " tp=" + std::to_string(tp));
      const auto w = workload(c.model, c.strategy, c.options);
      core::ParameterCounts counts;
      const auto real = real_tensors(w, tp, &counts);
      int64_t total = 0, trainable = 0;
      std::map<std::string, std::pair<int64_t, bool>> planned;
      for (const auto& t : core::plan_tensors(w, tp)) {
        planned[t.name] = {t.numel, t.trainable};
        total += t.numel;
        if (t.trainable) trainable += t.numel;
      }
      EXPECT_EQ(total, counts.total);
      EXPECT_EQ(trainable, counts.trainable);
      EXPECT_EQ(planned, real);
      if (tp == 1 && c.strategy == "sft") {
        EXPECT_EQ(total, core::parameter_count(c.model));
      }
    }
  }
}

TEST(PlanTensors, StrategyOptionsThatDoNotFitTheModelNameTheOption) {
  auto expect_error = [](const core::PlanWorkload& w, const std::string& needle) {
    try {
      core::plan_tensors(w, 1);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(workload(llama(), "lora", {{"target_modules", "c_attn"}}),
               "[strategy.lora] target_modules");
  expect_error(workload(llama(), "lora", {{"target_modules", "lm_head"}}),
               "lm_head cannot be adapted");
  expect_error(workload(llama(), "freeze", {{"trainable_layers", "9"}}), "trainable_layers=9");
  expect_error(workload(llama_tied_bias(), "freeze", {{"extra_modules", "lm_head"}}), "tied");
  expect_error(workload(llama(), "dora"), "[strategy] name='dora'");
}

TEST(PlanFlops, SftWithoutRecomputationIsTheModelFlopsPerToken) {
  for (const auto& m : {llama(), llama_tied_bias(), gpt2()}) {
    const auto w = workload(m);
    EXPECT_NEAR(core::plan_flops_per_token(w), core::flops_per_token(m, w.seq_len),
                1e-9 * core::flops_per_token(m, w.seq_len));
  }
  // Adapters only: no weight gradients of the frozen base (2 x its matrices fewer: about 4N
  // instead of 6N), and 6 x the adapters' parameters. Tiny llama: blocks 2 x (2 x 32² + 2 x 32 x
  // 16 + 3 x 32 x 64) + LM head 260 x 32 = 26,752 matrix parameters; LoRA r=8 on q (32 -> 32) and
  // v (32 -> 16): 2 x 8 x (64 + 48) = 1,792.
  auto lora = workload(llama(), "lora");
  EXPECT_DOUBLE_EQ(core::plan_flops_per_token(lora),
                   core::flops_per_token(llama(), 48) - 2.0 * 26752 + 6.0 * 1792);
  auto sft = workload(llama());
  auto recompute = sft;
  recompute.recompute = true;
  EXPECT_GT(core::plan_flops_per_token(recompute), 1.2 * core::plan_flops_per_token(sft));
}

// ---- memory terms ---------------------------------------------------------------------------

TEST(PlanMemory, ZeroOneDividesOptimizerStateByDp) {
  auto w = workload(llama());
  w.micro_batch = 1;  // 8 samples over dp 4
  const auto rows = core::plan_layouts(w, one_node(4), /*only_tp=*/1);
  ASSERT_EQ(rows.size(), 2u);
  const auto& z0 = row_of(rows, 1, 0);
  const auto& z1 = row_of(rows, 1, 1);
  EXPECT_EQ(z0.layout.dp, 4);
  EXPECT_DOUBLE_EQ(z0.optimizer_mb, 8.0 * static_cast<double>(z0.trainable) / 1e6);
  EXPECT_DOUBLE_EQ(z1.optimizer_mb * 4, z0.optimizer_mb);
  EXPECT_LT(z1.total_mb, z0.total_mb);
}

TEST(PlanMemory, TpTwoHalvesShardedParameterBytes) {
  auto m = llama();
  m.num_kv_heads = 0;  // every projection split
  const auto w = workload(m);
  std::map<std::string, int64_t> one;
  for (const auto& t : core::plan_tensors(w, 1)) one[t.name] = t.numel;
  int64_t sharded = 0, replicated = 0;
  for (const auto& t : core::plan_tensors(w, 2)) {
    if (base::ends_with(t.name, "proj.weight") || t.name == "lm_head.weight") {
      EXPECT_EQ(2 * t.numel, one.at(t.name)) << t.name;
      sharded += one.at(t.name);
    } else if (t.name == "model.embed_tokens.weight") {
      EXPECT_EQ(t.numel, (m.vocab_size + 1) / 2 * m.hidden_size);
      sharded += one.at(t.name);
    } else {
      EXPECT_EQ(t.numel, one.at(t.name)) << t.name;
      replicated += t.numel;
    }
  }
  const auto rows = core::plan_layouts(w, one_node(2));
  EXPECT_DOUBLE_EQ(row_of(rows, 1, 0).params_mb,
                   4.0 * static_cast<double>(sharded + replicated) / 1e6);
  EXPECT_DOUBLE_EQ(row_of(rows, 2, 0).params_mb,
                   4.0 * static_cast<double>(sharded / 2 + replicated) / 1e6);
}

TEST(PlanMemory, RecomputationReducesActivations) {
  for (const bool bf16 : {false, true}) {
    auto w = workload(llama());
    w.bf16 = bf16;
    auto r = w;
    r.recompute = true;
    const auto cluster = one_node(1);
    const auto none = core::plan_layout(w, cluster, {1, 1, 0});
    const auto block = core::plan_layout(r, cluster, {1, 1, 0});
    EXPECT_LT(block.activations_mb, none.activations_mb);
    EXPECT_EQ(block.params_mb, none.params_mb);
    EXPECT_GT(block.step_s, none.step_s);
  }
}

TEST(PlanMemory, Bf16AddsWeightCopiesAndHalvesActivations) {
  auto w = workload(llama());
  auto b = w;
  b.bf16 = true;
  const auto cluster = one_node(1);
  const auto fp32 = core::plan_layout(w, cluster, {1, 1, 0});
  const auto bf16 = core::plan_layout(b, cluster, {1, 1, 0});
  int64_t linear = 0;
  for (const auto& t : core::plan_tensors(w, 1)) {
    if (t.bf16_copy) linear += t.numel;
  }
  EXPECT_DOUBLE_EQ(bf16.params_mb - fp32.params_mb, 2.0 * static_cast<double>(linear) / 1e6);
  EXPECT_EQ(bf16.grads_mb, fp32.grads_mb);          // gradients stay fp32
  EXPECT_EQ(bf16.optimizer_mb, fp32.optimizer_mb);  // so does AdamW
  EXPECT_LT(bf16.activations_mb, 0.75 * fp32.activations_mb);
  EXPECT_LT(bf16.step_s, fp32.step_s);
}

// ---- layouts, fitting, recommendation -------------------------------------------------------

TEST(PlanLayouts, EveryDivisorWithTheConfigChecksMessages) {
  auto w = workload(llama());
  w.global_batch = 12;
  w.micro_batch = 2;
  const auto rows = core::plan_layouts(w, one_node(6));
  // tp 1 (dp 6, zero 0/1), 2 (dp 3, zero 0/1), 3 (dp 2, zero 0/1; num_heads 4: not possible),
  // 6 (dp 1: zero 0 only; not possible)
  ASSERT_EQ(rows.size(), 7u);
  EXPECT_TRUE(row_of(rows, 1, 1).valid);
  EXPECT_TRUE(row_of(rows, 2, 0).valid);
  EXPECT_FALSE(row_of(rows, 3, 0).valid);
  EXPECT_NE(row_of(rows, 3, 0).invalid_reason.find("does not divide [model] num_heads=4"),
            std::string::npos);
  w.global_batch = 9;  // not divisible by dp 6
  w.micro_batch = 3;
  const auto batch = core::plan_layout(w, one_node(6), {1, 6, 0});
  EXPECT_FALSE(batch.valid);
  EXPECT_NE(batch.invalid_reason.find("[train] global_batch=9"), std::string::npos);
}

TEST(PlanLayouts, ALayoutThatDoesNotFitIsMarkedAndTheFastestThatFitsRecommended) {
  core::PlanWorkload w = core::plan_calibrations().back().workload;  // TinyLlama SFT
  w.global_batch = 2;                                                // so that dp = 2 can run
  auto cluster = one_node(2);
  cluster.memory_mb_per_rank = 0;
  auto rows = core::plan_layouts(w, cluster);
  const auto tp1 = row_of(rows, 1, 0);
  const auto tp2 = row_of(rows, 2, 0);
  // A budget between the TP=2 and the DP=2 rows (DP=2 with ZeRO-1 is still above it).
  cluster.memory_mb_per_rank = (tp1.total_mb + tp2.total_mb) / 2;
  ASSERT_LT(tp2.total_mb, cluster.memory_mb_per_rank);
  rows = core::plan_layouts(w, cluster);
  EXPECT_FALSE(row_of(rows, 1, 0).fits);
  EXPECT_TRUE(row_of(rows, 2, 0).fits);
  const auto* best = core::recommended(rows);
  ASSERT_NE(best, nullptr);
  for (const auto& r : rows) {
    if (r.valid && r.fits) {
      EXPECT_LE(best->step_s, r.step_s);
    }
  }
  EXPECT_TRUE(best->fits);
  // Nothing fits: no recommendation.
  cluster.memory_mb_per_rank = 100;
  EXPECT_EQ(core::recommended(core::plan_layouts(w, cluster)), nullptr);
}

TEST(PlanLayouts, RecommendedIsTheFastestFittingRowTiesToLessMemory) {
  std::vector<core::PlanRow> rows(4);
  rows[0].step_s = 1.0;  // fastest, does not fit
  rows[0].fits = false;
  rows[1].step_s = 2.0;
  rows[1].total_mb = 500;
  rows[2].step_s = 2.0;  // as fast, less memory
  rows[2].total_mb = 400;
  rows[3].step_s = 0.5;  // fastest, not possible
  rows[3].valid = false;
  EXPECT_EQ(core::recommended(rows), &rows[2]);
}

// ---- calibration ------------------------------------------------------------------------------

TEST(PlanCalibration, TpCollectivesAreTheCountsMeasuredOnTinyLlama) {
  // docs/benchmarks.md "TinyLlama-1.1B shape": LoRA 286 MB in 246 all-reduces per step, SFT with
  // recomputation 468 MB in 137 (bench_train's counting communicator).
  const auto& rows = core::plan_calibrations();
  const auto& lora = rows.at(rows.size() - 2);
  const auto& sft = rows.back();
  const auto l = core::plan_layout(lora.workload, lora.cluster, lora.layout);
  const auto s = core::plan_layout(sft.workload, sft.cluster, sft.layout);
  EXPECT_EQ(l.tp_calls, 246);
  EXPECT_NEAR(l.tp_mb, 286, 1);
  EXPECT_EQ(s.tp_calls, 137);
  EXPECT_NEAR(s.tp_mb, 468, 1);
}

TEST(PlanCalibration, TinyLlamaConfigsAreTheCalibrationWorkloads) {
  const auto& rows = core::plan_calibrations();
  const std::pair<const char*, size_t> files[] = {
      {"benchmarks/configs/tinyllama_lora_bf16.ini", rows.size() - 2},
      {"benchmarks/configs/tinyllama_sft_bf16_recompute.ini", rows.size() - 1}};
  for (const auto& [file, index] : files) {
    SCOPED_TRACE(file);
    launch::Config c;
    std::string help;
    launch::parse_config({"--config", std::string(SHARDTUNE_SOURCE_DIR) + "/" + file}, c, help);
    const auto& w = rows.at(index).workload;
    // What `shardtune plan` and bench_train's MFU take from a configuration.
    const core::PlanWorkload got = launch::plan_workload(c);
    EXPECT_EQ(got.model, w.model);
    EXPECT_EQ(got.global_batch, w.global_batch);
    EXPECT_EQ(got.micro_batch, w.micro_batch);
    EXPECT_EQ(got.seq_len, w.seq_len);
    EXPECT_EQ(got.bf16, w.bf16);
    EXPECT_EQ(got.recompute, w.recompute);
    EXPECT_EQ(got.strategy, w.strategy);
    EXPECT_EQ(got.strategy_options, w.strategy_options);
    EXPECT_EQ(c.parallel.tp, rows.at(index).layout.tp);
  }
}

TEST(PlanCalibration, MeetsTheIssueTargetsOnEveryMeasuredRow) {
  // Issue 15: memory within 10%, step time within 25% of the measurements.
  for (const auto& c : core::plan_calibrations()) {
    SCOPED_TRACE(c.name);
    const auto r = core::plan_layout(c.workload, c.cluster, c.layout);
    if (c.measured_mb > 0) {
      EXPECT_NEAR(r.total_mb / c.measured_mb, 1.0, 0.10);
    }
    EXPECT_NEAR(r.step_s / c.measured_step_s, 1.0, 0.25);
  }
}

TEST(PlanCalibration, DocsTableIsWhatThePlannerPrintsNow) {
  const std::string doc = slurp(std::string(SHARDTUNE_SOURCE_DIR) + "/docs/planning.md");
  const std::string begin = "<!-- plan-calibration:begin -->\n",
                    end = "<!-- plan-calibration:end -->";
  const auto b = doc.find(begin), e = doc.find(end);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  const std::string table = doc.substr(b + begin.size(), e - b - begin.size());
  const auto printed = capture(kShardtune + " plan --calibration 2>&1");
  EXPECT_EQ(printed.code, 0);
  EXPECT_EQ(table, printed.output)
      << "docs/planning.md is stale: put the output of `build/launch/shardtune plan "
         "--calibration` between its plan-calibration markers";
}

// ---- the command ------------------------------------------------------------------------------

TEST(PlanCli, PrintsEveryLayoutAndTheRecommendation) {
  const std::string config =
      std::string(SHARDTUNE_SOURCE_DIR) + "/benchmarks/configs/tinyllama_sft_bf16_recompute.ini";
  auto r = capture(kShardtune + " plan --config " + config +
                   " --train.global_batch=4 --nodes 2 --ranks-per-node 2 --memory-gb 12 "
                   "--cores-per-node 2 2>&1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("params_MB"), std::string::npos) << r.output;
  // tp 1 (zero 0, 1), 2 (zero 0, 1), 4 (zero 0): five rows; tp=4 spans the two nodes.
  EXPECT_EQ(count(r.output, "\n   1    4 "), 2) << r.output;
  EXPECT_EQ(count(r.output, "\n   2    2 "), 2) << r.output;
  EXPECT_EQ(count(r.output, "\n   4    1 "), 1) << r.output;
  EXPECT_NE(r.output.find(" no "), std::string::npos) << r.output;  // tp=1 dp=4 zero=0 does not fit
  EXPECT_NE(r.output.find("recommended: tp="), std::string::npos) << r.output;

  r = capture(kShardtune + " plan --config " + config +
              " --ranks-per-node 2 --tp 2 --format csv --memory-gb 12 2>&1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("tp,dp,zero,params_mb,", 0), 0u) << r.output;
  EXPECT_EQ(count(r.output, "\n"), 2) << r.output;  // header + tp=2 dp=1
  EXPECT_NE(r.output.find(",yes,"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(",1\n"), std::string::npos) << r.output;  // recommended
}

TEST(PlanCli, ErrorsAreOneLineNamingTheOptionWithExitCodeTwo) {
  const std::string config =
      std::string(SHARDTUNE_SOURCE_DIR) + "/benchmarks/configs/tinyllama_lora_bf16.ini";
  const std::pair<std::string, std::string> cases[] = {
      {" --nodes 0", "--nodes='0'"},
      {" --ranks-per-node two", "--ranks-per-node='two'"},
      {" --ranks-per-node 4 --tp 3", "--tp=3 does not divide the world size 4"},
      {" --ranks-per-node 6 --tp 3", "[model] num_heads=32"},
      {" --memory-gb -1", "--memory-gb='-1'"},
      {" --zero 2", "--zero='2'"},
      {" --format json", "--format='json'"},
      {" --tp", "--tp needs a value"},
      {" --train.dtype=fp16", "[train] dtype"},
      {" --strategy.lora.rank=4", "rank"},
      {" --bogus=1", "bogus"},
  };
  for (const auto& [args, needle] : cases) {
    SCOPED_TRACE(args);
    const auto r = capture(kShardtune + " plan --config " + config + args + " 2>&1");
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_EQ(count(r.output, "\n"), 1) << r.output;
    EXPECT_NE(r.output.find("shardtune: error: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  }
  const auto missing = capture(kShardtune + " plan --config /nonexistent/plan.ini 2>&1");
  EXPECT_EQ(missing.code, 2) << missing.output;
  EXPECT_NE(missing.output.find("/nonexistent/plan.ini: cannot open config file"),
            std::string::npos)
      << missing.output;
}

TEST(PlanCli, HelpAndTheCliReferenceDescribeIt) {
  const auto help = capture(kShardtune + " plan --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.output.find("--ranks-per-node R"), std::string::npos);
  const auto usage = capture(kShardtune + " --help");
  EXPECT_NE(usage.output.find("  plan "), std::string::npos);
  const auto md = capture(kShardtune + " --help-markdown");
  EXPECT_NE(md.output.find("## `shardtune plan`"), std::string::npos);
  EXPECT_NE(md.output.find("--intra-gbs B"), std::string::npos);
}
