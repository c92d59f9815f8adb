// The fused kernels, bf16 compute and block recomputation wired into the models (core/compute.h),
// one process (TP = 1); tests/test_kernels_model_mpi.cpp repeats the parity at TP = 2 and the
// recomputation under DP at np = 2.
//
// Tolerances (fp32, relative to the tensor's largest magnitude):
//   fused vs reference, fp32: logits 2e-5, loss 2e-6, gradients 1e-4. The fused kernels evaluate
//     the same formulas in another order (one-pass softmax and log-sum-exp, RMSNorm's sum of
//     squares in vector lanes); single-precision rounding of sums over <= 260 terms is ~1e-6 of
//     the result, and backward through two blocks and the LM head compounds it to ~1e-5 at most.
//   bf16 vs fp32: logits 5e-2, loss 1e-2. Each bf16 rounding is 2^-9 = 0.2% relative; a value
//     passes through ~10 of them (norm output, q/k/v, scores' inputs, probabilities, attention
//     output, MLP input, gate/up, product, final norm), so a few tenths of a percent typical,
//     with a tail; 5% of the largest logit leaves room for that tail and still fails on a
//     wrong cast, a dropped term or a transposed weight (errors of order 100%).
//   recompute vs none: bitwise (the same kernels on the same inputs and RNG state).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <map>
#include <set>
#include <memory>
#include <string>

#include "core/kernels/fused_ops.h"
#include "core/loss.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "parallel/tp_ops.h"

using namespace shardtune;

namespace {

core::ModelConfig tiny(const std::string& family, double dropout = 0.0) {
  core::ModelConfig c;
  c.family = family;
  c.vocab_size = 260;
  c.hidden_size = 32;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = family == "llama" ? 2 : 0;
  c.intermediate_size = 64;
  c.max_position_embeddings = 64;
  c.dropout = dropout;
  c.init_std = 0.2;  // large enough that attention is far from uniform
  return c;
}

// Whether the autograd graph behind `t` has a block-recomputation node.
bool has_recompute_node(const torch::Tensor& t) {
  std::vector<torch::autograd::Node*> todo{t.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  while (!todo.empty()) {
    auto* n = todo.back();
    todo.pop_back();
    if (!n || !seen.insert(n).second) continue;
    if (n->name().find("Recompute") != std::string::npos) return true;
    for (const auto& e : n->next_edges()) todo.push_back(e.function.get());
  }
  return false;
}

struct Pass {
  torch::Tensor logits;
  bool recomputed = false;  // the graph had a recomputation node
  double loss = 0.0;
  std::map<std::string, torch::Tensor> grads;
  std::map<std::string, torch::ScalarType> param_dtypes;
};

// One forward + backward of a freshly built model (seed 5) under `compute`, with the default
// and tracker RNG streams seeded identically each time (dropout). `frozen`: parameter-name
// prefixes that get no gradient.
Pass run(const core::ModelConfig& config, const core::ComputeOptions& compute,
         const torch::Tensor& ids, const torch::Tensor& mask,
         const std::vector<std::string>& frozen = {}) {
  auto model = core::build_model(config, 5);
  for (auto& p : model->named_parameters()) {
    for (const auto& f : frozen) {
      if (p.key().rfind(f, 0) == 0) p.value().set_requires_grad(false);
    }
  }
  model->set_compute(compute);
  model->train();
  torch::manual_seed(11);
  parallel::rng_tracker().seed(12, 0);
  Pass out;
  auto logits = model->forward(ids, mask);
  auto labels = ids.clone();
  if (mask.defined()) labels.masked_fill_(mask.eq(0), -100);
  auto loss = core::causal_lm_loss(logits, labels, model->vocab_spec(), model->tp(), compute.fused);
  out.recomputed = has_recompute_node(loss.sum);
  loss.sum.backward();
  out.logits = logits.detach().to(torch::kFloat);
  out.loss = loss.sum.item<double>();
  for (const auto& p : model->named_parameters()) {
    out.param_dtypes[p.key()] = p.value().scalar_type();
    if (p.value().grad().defined()) out.grads[p.key()] = p.value().grad().clone();
  }
  return out;
}

torch::Tensor ids_of(int64_t b, int64_t t, uint64_t seed) {
  return torch::randint(0, 260, {b, t}, at::detail::createCPUGenerator(seed), torch::kLong);
}

// Right- and left-padded rows.
torch::Tensor padded_mask(int64_t b, int64_t t) {
  auto m = torch::ones({b, t}, torch::kLong);
  m[0].narrow(0, t - 5, 5).zero_();
  m[1].narrow(0, 0, 3).zero_();
  return m;
}

void expect_rel(const torch::Tensor& a, const torch::Tensor& b, double rel, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double err = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
  const double scale = b.abs().max().item<double>();
  EXPECT_LE(err, rel * scale + 1e-12) << what << ": max error " << err << " (scale " << scale << ")";
}

void expect_same_grads(const Pass& a, const Pass& b, double rel) {
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (const auto& [name, g] : b.grads) {
    ASSERT_TRUE(a.grads.count(name)) << name;
    if (rel == 0.0) {
      EXPECT_TRUE(torch::equal(a.grads.at(name), g)) << name;
    } else {
      expect_rel(a.grads.at(name), g, rel, name);
    }
  }
}

core::ComputeOptions compute(bool fused, bool bf16 = false, bool recompute = false) {
  core::ComputeOptions c;
  c.fused = fused;
  c.bf16 = bf16;
  c.recompute = recompute;
  return c;
}

}  // namespace

TEST(ModelKernels, FusedMatchesReferenceLlamaAndGpt2WithAndWithoutPadding) {
  for (const std::string family : {"llama", "gpt2"}) {
    for (bool pad : {false, true}) {
      const auto ids = ids_of(3, 20, 1);
      const auto mask = pad ? padded_mask(3, 20) : torch::Tensor();
      const auto ref = run(tiny(family), compute(false), ids, mask);
      const auto fused = run(tiny(family), compute(true), ids, mask);
      const std::string what = family + (pad ? " padded" : " unpadded");
      expect_rel(fused.logits, ref.logits, 2e-5, what + " logits");
      EXPECT_NEAR(fused.loss, ref.loss, 2e-6 * std::abs(ref.loss)) << what;
      expect_same_grads(fused, ref, 1e-4);
    }
  }
}

TEST(ModelKernels, FusedAndReferenceDifferSoTheParityAboveIsNotVacuous) {
  // The two paths run different code: their logits are close but not bitwise equal.
  const auto ids = ids_of(3, 20, 1);
  const auto ref = run(tiny("llama"), compute(false), ids, {});
  const auto fused = run(tiny("llama"), compute(true), ids, {});
  EXPECT_FALSE(torch::equal(fused.logits, ref.logits));
}

TEST(ModelKernels, FusedAdamWStepMatchesReferenceStep) {
  // AdamW over a model's parameters: fused (one pass) vs adamw_update, 3 steps, decay on.
  auto make = [](bool fused) {
    auto model = core::build_model(tiny("llama"), 5);
    std::vector<core::NamedParameter> params;
    for (auto& p : model->named_parameters()) params.push_back({p.key(), p.value()});
    core::AdamWOptions o;
    o.weight_decay = 0.1;
    o.fused = fused;
    return std::make_pair(model, std::make_unique<core::AdamW>(params, o));
  };
  auto [m_ref, opt_ref] = make(false);
  auto [m_fused, opt_fused] = make(true);
  // The same gradients for both (those of the reference model), so that only the update differs.
  const auto ids = ids_of(2, 16, 3);
  auto ref_params = m_ref->named_parameters();
  auto fused_params = m_fused->named_parameters();
  for (int step = 0; step < 3; ++step) {
    m_ref->zero_grad();
    core::causal_lm_loss(m_ref->forward(ids, {}), ids).sum.backward();
    for (const auto& p : ref_params) fused_params[p.key()].mutable_grad() = p.value().grad().clone();
    opt_ref->step(1e-2);
    opt_fused->step(1e-2);
  }
  for (const auto& p : ref_params) expect_rel(fused_params[p.key()], p.value(), 1e-6, p.key());
}

TEST(ModelBf16, CloseToFp32WithFp32MastersAndGradients) {
  for (const std::string family : {"llama", "gpt2"}) {
    for (bool fused : {false, true}) {
      const auto ids = ids_of(3, 20, 2);
      const auto mask = padded_mask(3, 20);
      const auto fp32 = run(tiny(family), compute(fused), ids, mask);
      const auto bf16 = run(tiny(family), compute(fused, /*bf16=*/true), ids, mask);
      const std::string what = family + (fused ? " fused" : " reference");
      expect_rel(bf16.logits, fp32.logits, 5e-2, what + " logits");
      EXPECT_NEAR(bf16.loss, fp32.loss, 1e-2 * std::abs(fp32.loss)) << what;
      EXPECT_FALSE(torch::equal(bf16.logits, fp32.logits)) << what << ": bf16 did not run";
      for (const auto& [name, dtype] : bf16.param_dtypes) {
        EXPECT_EQ(dtype, torch::kFloat) << name << ": master weights stay fp32";
      }
      for (const auto& [name, g] : bf16.grads) {
        EXPECT_EQ(g.scalar_type(), torch::kFloat) << name << ": gradients (and their sync) fp32";
        // Gradients: bf16 backward; direction and size within 10% of fp32 for every tensor.
        const auto& r = fp32.grads.at(name);
        const double rel = (g - r).norm().item<double>() / (r.norm().item<double>() + 1e-12);
        EXPECT_LT(rel, 0.1) << what << " " << name;
      }
    }
  }
}

TEST(ModelBf16, NextForwardAfterAFusedAdamWStepUsesTheUpdatedWeights) {
  // The bf16 weight copies are cached per weight and version; the fused AdamW writes through raw
  // pointers and must bump the versions, or the model would keep computing with stale weights.
  auto model = core::build_model(tiny("llama"), 5);
  model->set_compute(compute(true, /*bf16=*/true));
  std::vector<core::NamedParameter> params;
  for (auto& p : model->named_parameters()) params.push_back({p.key(), p.value()});
  core::AdamW opt(params, core::AdamWOptions{});
  const auto ids = ids_of(2, 16, 7);
  core::causal_lm_loss(model->forward(ids, {}), ids).sum.backward();
  opt.step(1e-2);
  torch::NoGradGuard no_grad;
  const auto after = model->forward(ids, {});
  kernels::clear_bf16_weight_cache();
  const auto fresh = model->forward(ids, {});
  EXPECT_TRUE(torch::equal(after, fresh));
  kernels::clear_bf16_weight_cache();
}

TEST(ModelRecompute, GradientsBitwiseEqualWithDropoutFusedAndReference) {
  for (const std::string family : {"llama", "gpt2"}) {
    for (bool fused : {false, true}) {
      const auto ids = ids_of(3, 20, 4);
      const auto mask = padded_mask(3, 20);
      const auto plain = run(tiny(family, 0.1), compute(fused), ids, mask);
      const auto again = run(tiny(family, 0.1), compute(fused, false, /*recompute=*/true), ids, mask);
      EXPECT_FALSE(plain.recomputed);
      EXPECT_TRUE(again.recomputed) << family << ": no block was recomputed";
      EXPECT_TRUE(torch::equal(plain.logits, again.logits)) << family;
      EXPECT_EQ(plain.loss, again.loss) << family;
      expect_same_grads(again, plain, 0.0);
    }
  }
}

TEST(ModelRecompute, FrozenEmbeddingFirstBlockStillGetsGradients) {
  // The first block's input needs no gradient (frozen embedding, as LoRA's backbone), its
  // parameters do: recomputation must still record and backpropagate through it.
  const auto ids = ids_of(2, 16, 5);
  const std::vector<std::string> frozen = {"model.embed_tokens"};
  const auto plain = run(tiny("llama", 0.1), compute(true), ids, {}, frozen);
  const auto again = run(tiny("llama", 0.1), compute(true, false, true), ids, {}, frozen);
  ASSERT_TRUE(plain.grads.count("model.layers.0.mlp.up_proj.weight"));
  EXPECT_TRUE(again.recomputed);
  expect_same_grads(again, plain, 0.0);
  EXPECT_FALSE(again.grads.count("model.embed_tokens.weight"));
}

TEST(ModelRecompute, Bf16GradientsBitwiseEqual) {
  const auto ids = ids_of(2, 16, 6);
  const auto plain = run(tiny("llama", 0.1), compute(true, true), ids, {});
  const auto again = run(tiny("llama", 0.1), compute(true, true, true), ids, {});
  EXPECT_TRUE(again.recomputed);
  expect_same_grads(again, plain, 0.0);
}
