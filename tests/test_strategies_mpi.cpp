// Every strategy under tensor parallelism: TP=2 (mpiexec -np 2) and TP=2 x DP=2 (-np 4) give the
// losses of one rank for 10 steps within 1e-5 relative (fp32; only summation orders differ), and
// the trained tensors, gathered, equal one rank's. Covers the three LoRA splits (column, row, and
// the replicated k/v of grouped-query attention when kv_heads % tp != 0), P-tuning v2 with split
// and replicated prefix heads, with and without the projection, Freeze and SFT.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "core/shard.h"
#include "io/wordnet.h"
#include "mpi_test_main.h"
#include "parallel/mpi_communicator.h"
#include "train_helpers.h"

using namespace shardtune;
using namespace shardtune::testing;

namespace {

struct Case {
  std::string name;
  std::string strategy;
  core::StrategyOptions options;
  int64_t kv_heads = 2;          // 2: split over tp=2; 1: replicated (grad_sum_over_tp)
  std::string family = "llama";
};

std::vector<Case> cases() {
  return {
      {"sft", "sft", {}},
      // Self-training under TP: generation and scoring run as TP collectives; every layout must
      // pick the same pseudo-labels (threshold below any score: all are kept).
      {"sft_self_training", "sft",
       {{"self_training_threshold", "-100"}, {"self_training_max_new_tokens", "12"}}},
      {"lora_all_linear", "lora", {{"target_modules", "all-linear"}, {"dropout", "0"}}},
      {"lora_replicated_kv", "lora", {{"target_modules", "all-linear"}, {"dropout", "0"}}, 1},
      {"lora_gpt2", "lora", {{"target_modules", "c_attn,attn.c_proj,c_fc"}, {"dropout", "0"}}, 0,
       "gpt2"},
      {"ptuning", "ptuning-v2", {{"pre_seq_len", "4"}}},
      {"ptuning_replicated_kv", "ptuning-v2", {{"pre_seq_len", "4"}}, 1},
      {"ptuning_projection", "ptuning-v2",
       {{"pre_seq_len", "4"}, {"prefix_projection", "true"}, {"prefix_hidden_size", "16"}}},
      {"freeze", "freeze", {{"trainable_layers", "1"}, {"extra_modules", "embed_tokens"}}},
  };
}

// 64 training and 8 held-out records of the WordNet define task as JSONL (read once per process:
// 16 trainers reading all of WordNet would dominate the test's time).
std::pair<std::string, std::string> define_files(int rank) {
  static std::pair<std::string, std::string> files;
  if (!files.first.empty()) return files;
  // Named by job size too: ctest -j runs the np=2 and np=4 jobs at once, and one's clean-up
  // must not remove the other's files.
  const auto dir = temp_dir("strat_data_np" + std::to_string(mpi_runtime().world_size()) + "_r" +
                            std::to_string(rank));
  const auto synsets = io::read_wordnet(io::kDefaultWordNetDir);
  auto write = [&](io::Split split, size_t n, const std::string& name) {
    const auto records = io::wordnet_records(synsets, io::WordNetTask::kDefine, split, 5);
    std::ofstream out(dir + "/" + name);
    for (size_t i = 0; i < n && i < records.size(); ++i) {
      out << nlohmann::json{{"prompt", records[i].prompt}, {"response", records[i].response}}.dump()
          << "\n";
    }
    return dir + "/" + name;
  };
  files = {write(io::Split::kTrain, 64, "train.jsonl"), write(io::Split::kEval, 8, "eval.jsonl")};
  // Unlabelled prompts for self-training: the next 6 training words, without their glosses.
  const auto more = io::wordnet_records(synsets, io::WordNetTask::kDefine, io::Split::kTrain, 5);
  std::ofstream prompts(dir + "/prompts.jsonl");
  for (size_t i = 64; i < 70; ++i) prompts << nlohmann::json{{"text", more[i].prompt}}.dump() << "\n";
  return files;
}

std::string prompts_file(int rank) {
  return std::filesystem::path(define_files(rank).first).parent_path().string() + "/prompts.jsonl";
}

launch::Config config_for(const Case& k, int rank, int world) {
  auto c = tiny_config(temp_dir("strat_" + k.name + "_r" + std::to_string(rank)));
  c.strategy = k.strategy;
  c.strategy_options = k.options;
  if (k.name == "sft_self_training") c.strategy_options["self_training_prompts"] = prompts_file(rank);
  c.data.source = "jsonl";
  std::tie(c.data.train_file, c.data.eval_file) = define_files(rank);
  c.train.steps = 10;
  c.train.global_batch = 4;
  c.train.micro_batch = world == 4 ? 2 : 4;  // dp=2 at np 4: 2 samples per rank
  c.train.lr = 1e-2;
  if (k.family == "gpt2") {
    c.model.family = "gpt2";
    c.model.num_kv_heads = 0;
  } else {
    c.model.num_kv_heads = k.kv_heads;
  }
  return c;
}

}  // namespace

TEST(StrategiesTensorParallel, TenStepsEqualOneRank) {
  const int world = mpi_runtime().world_size();
  const int rank = mpi_runtime().rank();
  for (const auto& k : cases()) {
    SCOPED_TRACE(k.name);
    auto c = config_for(k, rank, world);
    c.parallel.tp = 2;
    auto grid = parallel::RankGrid::create(mpi_runtime().world(), 2);
    launch::Trainer tp(c, grid);
    const auto losses = tp.train();
    c.parallel.tp = 1;
    c.train.micro_batch = 4;
    auto single_grid = local_grid();
    launch::Trainer one(c, single_grid);
    const auto ref = one.train();
    EXPECT_EQ(tp.data().train.size(), one.data().train.size());
    if (k.name == "sft_self_training") {
      EXPECT_EQ(tp.data().train.size(), 70u);  // 64 gold + 6 pseudo-labels
    }
    for (size_t i = 0; i < tp.data().train.size() && i < one.data().train.size(); ++i) {
      EXPECT_EQ(tp.data().train[i].tokens, one.data().train[i].tokens) << k.name << " example " << i;
    }
    ASSERT_EQ(losses.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_NEAR(losses[i], ref[i], 1e-5 * std::abs(ref[i])) << k.name << " step " << i + 1;
    }
    // Trained tensors: this rank's shard is the slice of the one-rank tensor. Compared on average
    // (mean |difference| <= 1e-4 of mean |value|), not element-wise: 10 AdamW steps turn
    // float-rounding differences of near-zero gradients into O(lr) differences of single
    // elements (m / sqrt(v) is O(1) whatever the gradient's size), while a wrong split, a missing
    // gradient sum or a misplaced slice moves whole rows by the full update.
    const parallel::TpGroup group{grid.tp_ptr()};
    auto ref_params = one.model().named_parameters();
    auto params = tp.model().named_parameters();
    for (const auto& [name, spec] : core::parameter_specs(tp.model())) {
      if (!params[name].requires_grad()) continue;
      auto full = core::gather_full(params[name].detach(), spec, group);
      const auto& r = ref_params[name];
      if (full.sizes() != r.sizes()) {
        ADD_FAILURE() << name << ": gathered shape differs from one rank's";
        continue;
      }
      const double err = (full - r).abs().mean().item<double>();
      const double scale = r.abs().mean().item<double>();
      EXPECT_LE(err, 1e-4 * scale) << k.name << " " << name;
      if (rank == 0 && std::getenv("SHARDTUNE_TEST_VERBOSE")) {
        std::printf("%s %s mean rel err %.3g\n", k.name.c_str(), name.c_str(), err / scale);
      }
    }
  }
}
