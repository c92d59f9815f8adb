// Single-process training: overfitting, determinism, accumulation, golden losses, WordNet task.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "train_helpers.h"

using namespace shardtune;
using namespace shardtune::testing;

TEST(Train, TinyModelOverfitsOneBatch) {
  const auto dir = temp_dir("overfit");
  auto c = tiny_config(dir);
  c.data.source = "jsonl";
  c.data.train_file = write_file(dir + "/train.jsonl",
                                 R"({"text": "the quick brown fox jumps over the lazy dog"}
{"prompt": "define: cat\n", "response": "a small domesticated feline"}
{"instruction": "add", "input": "2 3", "output": "5"}
{"text": "shardtune trains transformers"}
)");
  c.train.global_batch = 4;
  c.train.micro_batch = 4;
  c.train.steps = 150;
  c.train.lr = 1e-2;
  c.train.min_lr = 1e-3;
  c.train.warmup_steps = 5;
  auto grid = local_grid();
  launch::Trainer trainer(c, grid);
  const auto losses = trainer.train();
  EXPECT_GT(losses.front(), 4.0);
  EXPECT_LT(losses.back(), 0.05);
}

TEST(Train, SameSeedGivesIdenticalLosses) {
  const auto dir = temp_dir("determinism");
  auto c = tiny_config(dir);
  c.model.dropout = 0.1;  // dropout draws from the seeded generator too
  auto grid = local_grid();
  std::vector<double> first, second;
  {
    launch::Trainer t(c, grid);
    first = t.train();
  }
  {
    launch::Trainer t(c, grid);
    second = t.train();
  }
  ASSERT_EQ(first.size(), 10u);
  EXPECT_EQ(first, second);
  c.train.seed += 1;
  launch::Trainer t(c, grid);
  EXPECT_NE(t.train(), first);
}

TEST(Train, GradientAccumulationEqualsOneLargeBatch) {
  const auto dir = temp_dir("accumulation");
  auto c = tiny_config(dir);
  auto grid = local_grid();
  c.train.micro_batch = 8;
  launch::Trainer big(c, grid);
  const auto a = big.train();
  c.train.micro_batch = 2;
  launch::Trainer accum(c, grid);
  const auto b = accum.train();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * std::abs(a[i])) << i;
  expect_parameters_close(accum.model(), big.model());
}

// Per-step losses of a fixed tiny run on WordNet glosses, checked in. Regenerate (after an
// intended numerical change only) with SHARDTUNE_UPDATE_GOLDEN=1.
TEST(Train, GoldenLossesOfTinyConfig) {
  const auto dir = temp_dir("golden");
  auto c = tiny_config(dir);
  c.data.source = "wordnet";
  c.data.wordnet_task = "glosses";
  c.data.max_eval_samples = 0;
  c.train.steps = 12;
  auto grid = local_grid();
  launch::Trainer t(c, grid);
  const auto losses = t.train();
  const std::string golden = std::string(SHARDTUNE_SOURCE_DIR) + "/tests/golden/tiny_llama_wordnet.txt";
  if (std::getenv("SHARDTUNE_UPDATE_GOLDEN")) {
    std::ofstream out(golden);
    out.precision(9);
    for (double l : losses) out << l << "\n";
    GTEST_SKIP() << "golden file rewritten: " << golden;
  }
  std::ifstream in(golden);
  ASSERT_TRUE(in) << golden;
  std::vector<double> expected;
  for (double v; in >> v;) expected.push_back(v);
  ASSERT_EQ(expected.size(), losses.size());
  // fp32 on CPU; a different BLAS kernel may change the last bits, never 1e-4.
  for (size_t i = 0; i < losses.size(); ++i) {
    EXPECT_NEAR(losses[i], expected[i], 1e-4 * std::abs(expected[i])) << "step " << i + 1;
  }
}

TEST(Train, EvaluationAndMetricsFile) {
  const auto dir = temp_dir("metrics");
  auto c = tiny_config(dir);
  c.data.source = "wordnet";
  c.data.wordnet_task = "define";
  c.data.max_eval_samples = 32;
  c.train.eval_every = 5;
  c.train.steps = 10;
  auto grid = local_grid();
  launch::Trainer t(c, grid);
  t.train();
  std::ifstream in(dir + "/metrics.jsonl");
  std::string line;
  int steps = 0, evals = 0;
  while (std::getline(in, line)) {
    if (line.find("\"eval_loss\"") != std::string::npos) {
      ++evals;
      continue;
    }
    for (const char* key : {"\"step\"", "\"loss\"", "\"lr\"", "\"grad_norm\"", "\"tokens_per_s\"",
                            "\"elapsed_s\""}) {
      EXPECT_NE(line.find(key), std::string::npos) << key << " in " << line;
    }
    ++steps;
  }
  EXPECT_EQ(evals, 3);  // before, at step 5, after
  EXPECT_EQ(steps, 3);  // steps 1, 5, 10
}
