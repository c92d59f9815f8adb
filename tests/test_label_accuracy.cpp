// core/label_accuracy.h: exact-match label accuracy (the demo's metric) and the majority-class
// baseline. The accuracy is checked against its definition, greedy decoding, run token by token
// with core::generate on the same model.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "core/generate.h"
#include "core/label_accuracy.h"
#include "core/model.h"
#include "parallel/local_communicator.h"

using namespace shardtune;
using namespace shardtune::core;

namespace {

constexpr int64_t kPad = 49, kEos = 48;

ModelConfig tiny() {
  ModelConfig c;
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.num_layers = 2;
  c.num_heads = 2;
  c.intermediate_size = 24;
  c.max_position_embeddings = 32;
  return c;
}

// tokens = prompt then label; labels ignore the prompt (its first token is BOS).
Example make(const std::vector<int64_t>& prompt, const std::vector<int64_t>& label) {
  Example e;
  e.tokens = prompt;
  e.tokens.insert(e.tokens.end(), label.begin(), label.end());
  e.labels.assign(prompt.size(), kIgnoreIndex);
  e.labels.insert(e.labels.end(), label.begin(), label.end());
  return e;
}

// One-hot logits that predict `next[b][t]` at position t.
torch::Tensor logits_predicting(const std::vector<std::vector<int64_t>>& next, int64_t vocab) {
  const int64_t b = static_cast<int64_t>(next.size()), t = static_cast<int64_t>(next[0].size());
  auto logits = torch::zeros({b, t, vocab});
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t j = 0; j < t; ++j) logits[i][j][next[i][j]] = 1.0;
  }
  return logits;
}

}  // namespace

TEST(LabelExactMatch, EveryTargetMustBeTheArgmaxAndPromptPositionsDoNotCount) {
  const int64_t I = kIgnoreIndex;
  // Row 0: targets at 2 and 3 (predicted at positions 1 and 2); position 0's guess is a prompt
  // token and does not count. Row 1: the same targets, the second one wrong. Row 2: no target.
  const auto labels =
      torch::tensor(std::vector<int64_t>{I, I, 7, 8, I, I, 7, 8, I, I, I, I}).view({3, 4});
  const auto logits = logits_predicting({{0, 7, 8, 3}, {5, 7, 9, 3}, {1, 2, 3, 4}}, 10);
  const auto match = label_exact_match(logits, labels);
  EXPECT_TRUE(match[0].item<bool>());
  EXPECT_FALSE(match[1].item<bool>());
  EXPECT_FALSE(match[2].item<bool>());
  const auto has = has_targets(labels);
  EXPECT_TRUE(has[0].item<bool>());
  EXPECT_TRUE(has[1].item<bool>());
  EXPECT_FALSE(has[2].item<bool>());
}

// score_labels says "correct" exactly when greedy decoding after the prompt produces the label:
// labels are built from the model's own greedy continuations (so several are right), then some
// are altered in one token (so several are wrong); both must be classified like the reference.
TEST(ScoreLabels, AgreesWithGreedyDecodingWhateverTheMicroBatch) {
  auto model = build_model(tiny(), 11);
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t n = 0; n < 8; ++n) {
    std::vector<int64_t> p = {47};  // BOS stand-in
    for (int64_t i = 0; i < 2 + n % 4; ++i) p.push_back((5 * n + 3 * i + 1) % 40);
    prompts.push_back(p);
  }
  GenerateOptions greedy;
  greedy.max_new_tokens = 3;
  std::vector<Example> examples;
  std::vector<bool> expected;
  for (size_t n = 0; n < prompts.size(); ++n) {
    auto label = generate(*model, {prompts[n]}, kPad, greedy)[0];
    ASSERT_EQ(label.size(), 3u);
    const bool alter = n % 3 == 1;
    if (alter) label[n / 3] = (label[n / 3] + 1) % 40;  // n = 1, 4, 7: token 0, 1, 2
    examples.push_back(make(prompts[n], label));
    expected.push_back(!alter);
  }
  // The reference, one example at a time: greedy decoding reproduces the label.
  int64_t reference_correct = 0;
  for (size_t n = 0; n < examples.size(); ++n) {
    const auto out = generate(*model, {prompts[n]}, kPad, greedy)[0];
    const bool right = out == target_tokens(examples[n]);
    EXPECT_EQ(right, static_cast<bool>(expected[n])) << n;
    reference_correct += right;
  }
  ASSERT_GT(reference_correct, 0);
  ASSERT_LT(reference_correct, static_cast<int64_t>(examples.size()));

  parallel::LocalCommunicator dp("dp");
  model->train();
  for (int64_t micro : {1, 3, 8}) {
    const auto s = score_labels(*model, examples, dp, micro, kPad);
    EXPECT_EQ(s.examples, static_cast<int64_t>(examples.size())) << micro;
    EXPECT_EQ(s.correct, reference_correct) << micro;
    EXPECT_TRUE(model->is_training());  // restored
  }
}

TEST(MajorityBaseline, CommonestTrainingLabelScoredOnEval) {
  const std::vector<int64_t> p = {47, 1, 2};
  const std::vector<Example> train = {make(p, {5, kEos}), make(p, {6, kEos}), make(p, {6, kEos}),
                                      make(p, {5, 6, kEos}), make(p, {6, kEos})};
  const std::vector<Example> eval = {make(p, {6, kEos}), make(p, {5, kEos}), make(p, {6, 6, kEos}),
                                     make(p, {6, kEos})};
  const auto m = majority_baseline(train, eval);
  EXPECT_EQ(m.label, (std::vector<int64_t>{6, kEos}));
  EXPECT_EQ(m.train_count, 3);
  EXPECT_EQ(m.eval_examples, 4);
  EXPECT_EQ(m.eval_matches, 2);  // a longer label that starts the same does not match
  EXPECT_DOUBLE_EQ(m.accuracy(), 0.5);
  // Ties go to the label seen first.
  const auto tie = majority_baseline({make(p, {9, kEos}), make(p, {8, kEos})}, eval);
  EXPECT_EQ(tie.label, (std::vector<int64_t>{9, kEos}));
  EXPECT_EQ(tie.eval_matches, 0);
}
