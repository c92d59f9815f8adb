// Model, loss, optimizer and schedule: shapes, causality, RoPE, masking, closed forms.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "base/errors.h"
#include "core/layers.h"
#include "core/loss.h"
#include "core/model.h"
#include "core/optimizer.h"

using namespace shardtune;
using namespace shardtune::core;

namespace {

ModelConfig tiny(const std::string& family) {
  ModelConfig c;
  c.family = family;
  c.vocab_size = 67;
  c.hidden_size = 32;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = family == "llama" ? 2 : 0;
  c.intermediate_size = 48;
  c.max_position_embeddings = 64;
  return c;
}

class ModelFamilies : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(ModelFamilies, LogitShapeAndParameterCountMatchClosedForm) {
  auto c = tiny(GetParam());
  auto model = build_model(c, 1);
  auto ids = torch::randint(0, c.vocab_size, {3, 11}, torch::kLong);
  auto logits = model->forward(ids, {});
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, 11, c.vocab_size}));
  int64_t n = 0;
  for (auto& p : model->parameters()) n += p.numel();
  EXPECT_EQ(n, parameter_count(c));
}

TEST_P(ModelFamilies, ChangingAFutureTokenLeavesEarlierLogitsUnchanged) {
  auto c = tiny(GetParam());
  auto model = build_model(c, 2);
  model->eval();
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, c.vocab_size, {2, 16}, torch::kLong);
  auto changed = ids.clone();
  changed.index_put_({torch::indexing::Slice(), 9}, (ids.select(1, 9) + 1) % c.vocab_size);
  auto a = model->forward(ids, {});
  auto b = model->forward(changed, {});
  auto prefix = torch::indexing::Slice(0, 9);
  EXPECT_LT((a.index({torch::indexing::Slice(), prefix}) - b.index({torch::indexing::Slice(), prefix}))
                .abs().max().item<double>(), 1e-6);
  EXPECT_GT((a.select(1, 9) - b.select(1, 9)).abs().max().item<double>(), 1e-4);
}

TEST_P(ModelFamilies, PaddingDoesNotChangeRealTokens) {
  // Left-padding a sequence must not change the logits of its real tokens (positions come from
  // the mask, padded keys are masked).
  auto c = tiny(GetParam());
  auto model = build_model(c, 3);
  model->eval();
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, c.vocab_size, {1, 7}, torch::kLong);
  auto plain = model->forward(ids, torch::ones({1, 7}, torch::kLong));
  auto padded_ids = torch::cat({torch::zeros({1, 3}, torch::kLong), ids}, 1);
  auto mask = torch::cat({torch::zeros({1, 3}, torch::kLong), torch::ones({1, 7}, torch::kLong)}, 1);
  auto padded = model->forward(padded_ids, mask).narrow(1, 3, 7);
  EXPECT_TRUE(torch::isfinite(padded).all().item<bool>());
  EXPECT_LT((plain - padded).abs().max().item<double>(), 1e-5);
}

TEST_P(ModelFamilies, InitialisationIsAFunctionOfSeedAndName) {
  auto c = tiny(GetParam());
  auto a = build_model(c, 5);
  auto b = build_model(c, 5);
  auto other = build_model(c, 6);
  auto pa = a->named_parameters();
  auto pb = b->named_parameters();
  auto po = other->named_parameters();
  bool any_differs = false;
  for (auto& item : pa) {
    EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
    if (item.value().dim() == 2) any_differs |= !torch::equal(item.value(), po[item.key()]);
  }
  EXPECT_TRUE(any_differs);
}

INSTANTIATE_TEST_SUITE_P(Families, ModelFamilies, ::testing::Values("llama", "gpt2"));

TEST(Model, HuggingFaceParameterNames) {
  auto llama = build_model(tiny("llama"), 1)->named_parameters();
  for (const char* name : {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                           "model.layers.1.self_attn.k_proj.weight",
                           "model.layers.0.mlp.gate_proj.weight", "model.layers.1.mlp.down_proj.weight",
                           "model.layers.0.input_layernorm.weight",
                           "model.layers.0.post_attention_layernorm.weight", "model.norm.weight",
                           "lm_head.weight"}) {
    EXPECT_TRUE(llama.contains(name)) << name;
  }
  EXPECT_EQ(llama["model.layers.0.self_attn.k_proj.weight"].sizes(),
            (std::vector<int64_t>{16, 32}));  // 2 kv heads x head_dim 8
  auto gpt2 = build_model(tiny("gpt2"), 1)->named_parameters();
  for (const char* name : {"transformer.wte.weight", "transformer.wpe.weight",
                           "transformer.h.0.ln_1.weight", "transformer.h.0.attn.c_attn.weight",
                           "transformer.h.1.attn.c_proj.bias", "transformer.h.0.mlp.c_fc.weight",
                           "transformer.ln_f.bias"}) {
    EXPECT_TRUE(gpt2.contains(name)) << name;
  }
  EXPECT_FALSE(gpt2.contains("lm_head.weight"));
}

TEST(Model, TiedLlamaHasNoLmHead) {
  auto c = tiny("llama");
  c.tie_word_embeddings = true;
  c.attention_bias = true;
  auto model = build_model(c, 1);
  auto params = model->named_parameters();
  EXPECT_FALSE(params.contains("lm_head.weight"));
  EXPECT_TRUE(params.contains("model.layers.0.self_attn.q_proj.bias"));
  int64_t n = 0;
  for (auto& p : model->parameters()) n += p.numel();
  EXPECT_EQ(n, parameter_count(c));
}

TEST(Model, ConfigValidationNamesTheField) {
  auto c = tiny("llama");
  c.num_heads = 5;
  try {
    c.validate();
    FAIL() << "expected UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("[model] num_heads=5"), std::string::npos) << e.what();
  }
  c = tiny("llama");
  c.num_kv_heads = 3;
  EXPECT_THROW(c.validate(), UserError);
  c = tiny("mamba");
  EXPECT_THROW(c.validate(), UserError);
  EXPECT_EQ(ModelConfig::from_json(tiny("gpt2").to_json()), tiny("gpt2"));
}

TEST(Rope, MatchesHandComputedRotation) {
  // head_dim 4, theta 10000: inv_freq = [1, 0.01]; at position p the pairs (x0, x2) and (x1, x3)
  // rotate by angles p and 0.01 p (Hugging Face rotate-half convention).
  auto pos = torch::tensor({{0, 1, 2}}, torch::kLong);
  auto [cos, sin] = rotary_tables(pos, 4, 10000.0, torch::kFloat);
  auto x = torch::tensor({1.f, 2.f, 3.f, 4.f}).view({1, 1, 1, 4}).expand({1, 1, 3, 4});
  auto y = apply_rotary(x, cos, sin);
  for (int p = 0; p < 3; ++p) {
    const double a = p * 1.0, b = p * 0.01;
    const double expected[4] = {1 * std::cos(a) - 3 * std::sin(a), 2 * std::cos(b) - 4 * std::sin(b),
                                3 * std::cos(a) + 1 * std::sin(a), 4 * std::cos(b) + 2 * std::sin(b)};
    for (int i = 0; i < 4; ++i) {
      EXPECT_NEAR(y[0][0][p][i].item<double>(), expected[i], 1e-6) << "pos " << p << " dim " << i;
    }
  }
}

TEST(Loss, IgnoresMaskedTargetsAndShifts) {
  torch::manual_seed(0);
  auto logits = torch::randn({2, 4, 5});
  auto labels = torch::tensor({{-100, 1, -100, 3}, {-100, -100, 2, 4}}, torch::kLong);
  auto loss = causal_lm_loss(logits, labels);
  EXPECT_EQ(loss.tokens, 4);
  // By hand: position t predicts labels[t+1].
  auto lsm = torch::log_softmax(logits, -1);
  double expected = -(lsm[0][0][1] + lsm[0][2][3] + lsm[1][1][2] + lsm[1][2][4]).item<double>();
  EXPECT_NEAR(loss.sum.item<double>(), expected, 1e-5);
  // Logits at positions whose next label is masked do not matter.
  auto changed = logits.clone();
  changed[0][1] += 3.0;
  changed[1][3] -= 2.0;
  EXPECT_NEAR(causal_lm_loss(changed, labels).sum.item<double>(), expected, 1e-5);
  EXPECT_EQ(count_targets(labels), 4);
}

// Both AdamW paths against the closed form. The reference path (LibTorch ops) lands on the
// nearest float (1e-7 < one ulp at 1.0, 1.19e-7); the fused kernel orders the same float
// operations differently from LibTorch's kernels and may land one ulp away, so it gets 2 ulps.
TEST(AdamW, OneStepMatchesClosedForm) {
  for (const bool fused : {false, true}) {
    SCOPED_TRACE(fused ? "fused" : "reference");
    const double tol = fused ? 2.4e-7 : 1e-7;
    auto w = torch::full({2, 2}, 1.0).set_requires_grad(true);
    auto b = torch::full({2}, 1.0).set_requires_grad(true);
    w.mutable_grad() = torch::full({2, 2}, 0.5);
    b.mutable_grad() = torch::full({2}, -0.25);
    AdamWOptions o;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    o.weight_decay = 0.1;
    o.fused = fused;
    AdamW opt({{"w", w}, {"b", b}}, o);
    const double lr = 0.01;
    opt.step(lr);
    // t=1: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps); decay on matrices only.
    const double w_expected = 1.0 * (1 - lr * 0.1) - lr * 0.5 / (0.5 + 1e-8);
    const double b_expected = 1.0 + lr * 0.25 / (0.25 + 1e-8);
    EXPECT_NEAR(w[0][0].item<double>(), w_expected, tol);
    EXPECT_NEAR(b[0].item<double>(), b_expected, tol);
    EXPECT_EQ(opt.state_bytes(), (4 + 2) * 2 * 4);
    // Second step, closed form of the moment recursions.
    w.mutable_grad() = torch::full({2, 2}, 0.5);
    b.mutable_grad() = torch::full({2}, -0.25);
    opt.step(lr);
    const double m = 0.9 * 0.05 + 0.1 * 0.5, v = 0.999 * 0.00025 + 0.001 * 0.25;
    const double upd = (m / (1 - 0.81)) / (std::sqrt(v / (1 - 0.999 * 0.999)) + 1e-8);
    EXPECT_NEAR(w[0][0].item<double>(), w_expected * (1 - lr * 0.1) - lr * upd, tol);
  }
}

TEST(LrSchedule, WarmupThenCosine) {
  LrSchedule s{1.0, 0.1, 4, 14};
  EXPECT_DOUBLE_EQ(s.at(0), 0.25);
  EXPECT_DOUBLE_EQ(s.at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);                         // decay starts at the peak
  EXPECT_NEAR(s.at(13), 0.1, 1e-12);                      // ends at min_lr
  EXPECT_NEAR(s.at(7), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 3.0 / 9.0)), 1e-12);
  LrSchedule flat{0.5, 0.0, 0, 1};
  EXPECT_DOUBLE_EQ(flat.at(0), 0.5);
}

TEST(GradClip, ScalesToMaxNorm) {
  auto p = torch::zeros({4}).set_requires_grad(true);
  p.mutable_grad() = torch::tensor({3.0f, 4.0f, 0.0f, 0.0f});
  std::vector<NamedParameter> params{{"p", p}};
  const double norm = std::sqrt(grad_norm_squared(params));
  EXPECT_NEAR(norm, 5.0, 1e-6);
  AdamW opt(params, AdamWOptions{});
  EXPECT_NEAR(clip_grad_norm(opt, 1.0), 5.0, 1e-6);  // the norm before clipping
  EXPECT_NEAR(std::sqrt(grad_norm_squared(params)), 1.0, 1e-5);
  EXPECT_NEAR(clip_grad_norm(opt, 0.0), 1.0, 1e-5);  // max_norm 0: measured, not clipped
  EXPECT_NEAR(std::sqrt(grad_norm_squared(params)), 1.0, 1e-5);
}
