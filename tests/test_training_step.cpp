// The training algorithm below launch/ (core/training_step.h, core/optimizer.h), without a
// Trainer: loss normalisation by the global target count, accumulation equal to one batch, the
// reported gradient norm, clipping that counts each parameter once, evaluation. One rank; the
// multi-rank cases are test_dp / test_tp (through the Trainer, which uses the same step).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/batch.h"
#include "core/loss.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "core/training_step.h"
#include "parallel/local_communicator.h"

using namespace shardtune;
using namespace shardtune::core;

namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.num_layers = 1;
  c.num_heads = 2;
  c.intermediate_size = 24;
  c.max_position_embeddings = 32;
  return c;
}

// Examples of different lengths (so padding and target counts differ per micro-batch).
std::vector<Example> examples() {
  std::vector<Example> out;
  for (int64_t n : {5, 9, 3, 12, 7, 4}) {
    Example e;
    for (int64_t i = 0; i < n; ++i) e.tokens.push_back((7 * i + n) % 49);
    e.labels = e.tokens;
    e.labels[0] = kIgnoreIndex;
    out.push_back(e);
  }
  return out;
}

std::vector<NamedParameter> all_parameters(CausalLMImpl& model) {
  std::vector<NamedParameter> out;
  for (auto& p : model.named_parameters()) out.push_back({p.key(), p.value()});
  return out;
}

std::vector<const Example*> pointers(const std::vector<Example>& v) {
  std::vector<const Example*> out;
  for (const auto& e : v) out.push_back(&e);
  return out;
}

}  // namespace

// Whatever the micro-batching, a step reports the mean over every target token of the batch and
// the norm of that mean's gradient (accumulated over micro-batches). The parameters after the
// update are compared through the Trainer (Train.GradientAccumulationEqualsOneLargeBatch), with
// the tolerance AdamW's normalisation of near-zero gradients needs.
TEST(TrainingStep, LossIsTheGlobalTokenMeanAndAccumulationEqualsOneBatch) {
  const auto data = examples();
  // Reference: one batch, mean over every target token, gradient norm by plain autograd.
  auto ref = build_model(tiny(), 3);
  auto batch = collate(pointers(data), /*pad_id=*/49);
  auto loss = causal_lm_loss(ref->forward(batch.input_ids, batch.attention_mask), batch.labels);
  const double mean = loss.sum.item<double>() / static_cast<double>(loss.tokens);
  (loss.sum / static_cast<double>(loss.tokens)).backward();
  const double ref_norm = std::sqrt(grad_norm_squared(all_parameters(*ref)));

  parallel::LocalCommunicator dp("dp");
  for (int64_t micro : {6, 2, 1}) {
    auto model = build_model(tiny(), 3);
    TrainingStepOptions o;
    o.micro_batch = micro;
    o.pad_id = 49;
    o.grad_clip = 0.0;
    TrainingStep step(*model, all_parameters(*model), dp, o);
    const auto s = step.run(pointers(data), 1e-2);
    EXPECT_NEAR(s.loss, mean, 1e-6 * mean) << micro;
    EXPECT_NEAR(s.grad_norm, ref_norm, 1e-5 * ref_norm) << micro;
    EXPECT_EQ(s.tokens, 5 + 9 + 3 + 12 + 7 + 4) << micro;
    EXPECT_EQ(step.optimizer().step_count(), 1);
  }
}

TEST(GradClip, CountsEachParameterOnceAndReducesOverItsGroups) {
  auto a = torch::zeros({2}).set_requires_grad(true);
  auto b = torch::zeros({2}).set_requires_grad(true);
  a.mutable_grad() = torch::tensor({3.0f, 4.0f});
  b.mutable_grad() = torch::tensor({12.0f, 0.0f});
  parallel::LocalCommunicator tp("tp");
  // b is a TP duplicate this rank does not count: the norm is a's alone, 5.
  AdamW opt({{"a", a}, {"b", b}}, AdamWOptions{}, NormShare{{true, false}, {&tp}});
  EXPECT_DOUBLE_EQ(opt.local_grad_norm_squared(), 25.0);
  EXPECT_NEAR(clip_grad_norm(opt, 1.0), 5.0, 1e-12);
  // Every gradient is scaled by the same factor, counted or not.
  EXPECT_NEAR(a.grad()[0].item<double>(), 3.0 / (5.0 + 1e-6), 1e-6);
  EXPECT_NEAR(b.grad()[0].item<double>(), 12.0 / (5.0 + 1e-6), 1e-6);
  // Counting all: 13.
  AdamW all({{"a", a}, {"b", b}}, AdamWOptions{});
  a.mutable_grad() = torch::tensor({3.0f, 4.0f});
  b.mutable_grad() = torch::tensor({12.0f, 0.0f});
  EXPECT_NEAR(clip_grad_norm(all, 0.0), 13.0, 1e-6);
}

TEST(Evaluate, MeanOverEveryTargetTokenWhateverTheMicroBatch) {
  const auto data = examples();
  auto model = build_model(tiny(), 5);
  auto batch = collate(pointers(data), 49);
  torch::NoGradGuard no_grad;
  model->eval();
  auto loss = causal_lm_loss(model->forward(batch.input_ids, batch.attention_mask), batch.labels);
  const double mean = loss.sum.item<double>() / static_cast<double>(loss.tokens);
  model->train();
  parallel::LocalCommunicator dp("dp");
  for (int64_t micro : {1, 4, 6}) {
    const auto r = evaluate(*model, data, dp, micro, 49);
    EXPECT_NEAR(r.loss, mean, 1e-6 * mean) << micro;
    EXPECT_EQ(r.tokens, loss.tokens);
    EXPECT_NEAR(r.perplexity, std::exp(mean), 1e-6 * std::exp(mean));
    EXPECT_TRUE(model->is_training());  // restored
  }
}
