// Tensor parallelism under mpiexec -np 2 and -np 4: every TP primitive and layer against an
// unsharded reference built from the same weights (outputs, input gradients, weight gradients);
// whole models (llama, gpt2) trained at TP=2, TP=4 and TP=2 x DP=2 against TP=1, DP=1 are in
// test_tp_models.cpp (tolerances: tp_test_helpers.h).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "base/errors.h"
#include "core/generate.h"
#include "core/layers.h"
#include "core/loss.h"
#include "core/model.h"
#include "core/shard.h"
#include "mpi_test_main.h"
#include "parallel/mpi_communicator.h"
#include "parallel/tp_ops.h"
#include "tp_test_helpers.h"
#include "train_helpers.h"

using namespace shardtune;
using namespace shardtune::testing;

// ---- primitives ---------------------------------------------------------------------------------

TEST(TpOps, CopyToRegionIsIdentityForwardAllReduceBackward) {
  WorldTp w;
  const int n = w.tp.size(), r = w.tp.rank();
  auto x = torch::ones({3, 4}, torch::requires_grad());
  auto y = parallel::copy_to_tp(x, w.tp);
  EXPECT_TRUE(torch::equal(y, x));
  (y * static_cast<double>(r + 1)).sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::full({3, 4}, n * (n + 1) / 2.0)));
}

TEST(TpOps, ReduceFromRegionIsAllReduceForwardIdentityBackward) {
  WorldTp w;
  const int n = w.tp.size(), r = w.tp.rank();
  auto x = torch::full({2, 5}, static_cast<double>(r + 1), torch::requires_grad());
  auto y = parallel::reduce_from_tp(x, w.tp);
  EXPECT_TRUE(torch::equal(y, torch::full({2, 5}, n * (n + 1) / 2.0)));
  (y * 3.0).sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::full({2, 5}, 3.0)));
}

TEST(TpOps, GatherAndScatterAlongLastDim) {
  WorldTp w;
  const int n = w.tp.size(), r = w.tp.rank();
  auto full = shared_randn({2, 3, 4 * n}, 7);
  auto mine = full.narrow(-1, 4 * r, 4).clone().requires_grad_(true);
  auto gathered = parallel::gather_from_tp(mine, w.tp);
  EXPECT_TRUE(torch::equal(gathered, full));
  auto weight = shared_randn({2, 3, 4 * n}, 8);
  (gathered * weight).sum().backward();
  EXPECT_TRUE(torch::equal(mine.grad(), weight.narrow(-1, 4 * r, 4)));

  auto src = full.clone().requires_grad_(true);
  auto scattered = parallel::scatter_to_tp(src, w.tp);
  EXPECT_TRUE(torch::equal(scattered, full.narrow(-1, 4 * r, 4)));
  // Each rank's slice gets gradient (rank + 1): backward all-gathers the slices.
  (scattered * static_cast<double>(r + 1)).sum().backward();
  for (int k = 0; k < n; ++k) {
    EXPECT_TRUE(torch::equal(src.grad().narrow(-1, 4 * k, 4),
                             torch::full({2, 3, 4}, static_cast<double>(k + 1))));
  }
}

TEST(TpOps, OneRankGroupIsAShortcut) {
  parallel::TpGroup none;
  auto x = torch::randn({2, 2}, torch::requires_grad());
  EXPECT_TRUE(parallel::copy_to_tp(x, none).is_same(x));
  EXPECT_TRUE(parallel::reduce_from_tp(x, none).is_same(x));
  EXPECT_TRUE(parallel::gather_from_tp(x, none).is_same(x));
  EXPECT_TRUE(parallel::scatter_to_tp(x, none).is_same(x));
}

TEST(TpOps, RngTrackerStreams) {
  WorldTp w;
  auto& tracker = parallel::rng_tracker();
  tracker.seed(99, w.tp.rank());
  auto shared = torch::rand({64});
  torch::Tensor own;
  {
    auto fork = tracker.fork();
    own = torch::rand({64});
  }
  auto shared_after = torch::rand({64});  // the default stream continues where it was
  // Default stream: equal on every rank; model-parallel stream: different per TP rank.
  auto all = torch::empty({w.tp.size() * 64});
  w.tp.comm->all_gather(all, shared);
  auto all_own = torch::empty({w.tp.size() * 64});
  w.tp.comm->all_gather(all_own, own);
  for (int k = 1; k < w.tp.size(); ++k) {
    EXPECT_TRUE(torch::equal(all.narrow(0, 64 * k, 64), all.narrow(0, 0, 64)));
    EXPECT_FALSE(torch::equal(all_own.narrow(0, 64 * k, 64), all_own.narrow(0, 0, 64)));
  }
  torch::manual_seed(99);
  torch::rand({64});
  EXPECT_TRUE(torch::equal(shared_after, torch::rand({64})));
}

// ---- layers -------------------------------------------------------------------------------------

namespace {

// A TP linear with weights sliced from shared full ones, checked against F.linear on the full ones.
void check_linear(core::LinearKind kind, int64_t in, int64_t out, int64_t parts, bool bias) {
  WorldTp w;
  core::Linear layer(in, out, bias, kind, w.tp, parts);
  auto full_w = shared_randn({out, in}, 11);
  auto full_b = shared_randn({out}, 12);
  {
    torch::NoGradGuard g;
    core::assign_from_full(layer->weight, full_w, layer->shard_spec("weight"));
    if (bias) core::assign_from_full(layer->bias, full_b, layer->shard_spec("bias"));
  }
  auto x_full = shared_randn({2, 5, in}, 13);
  auto ref_w = full_w.clone().requires_grad_(true);
  auto ref_b = full_b.clone().requires_grad_(true);
  auto ref_x = x_full.clone().requires_grad_(true);
  auto ref_y = torch::nn::functional::linear(ref_x, ref_w, bias ? ref_b : torch::Tensor());
  auto g = shared_randn(ref_y.sizes().vec(), 14);
  (ref_y * g).sum().backward();

  const auto wspec = layer->shard_spec("weight");
  torch::Tensor x = (kind == core::LinearKind::kRow)
                        ? x_full.narrow(-1, wspec.offset, wspec.length).clone().requires_grad_(true)
                        : x_full.clone().requires_grad_(true);
  auto y = layer(x);
  torch::Tensor y_full = y;
  if (kind == core::LinearKind::kColumn) {
    core::ShardSpec out_spec = layer->shard_spec("bias");
    y_full = core::gather_full(y.detach().movedim(-1, 0), out_spec, w.tp).movedim(0, -1);
    // Column outputs involve no cross-rank sum, but a GEMM of another shape may block its
    // reductions differently: close, not bitwise.
    expect_close(y.detach(),
                 core::slice_of(ref_y.detach().movedim(-1, 0), out_spec).movedim(0, -1),
                 "local output");
  }
  expect_close(y_full.detach(), ref_y.detach(), "output");
  auto g_local = kind == core::LinearKind::kColumn
                     ? core::slice_of(g.movedim(-1, 0), layer->shard_spec("bias")).movedim(0, -1)
                     : g;
  (y * g_local).sum().backward();
  auto ref_x_grad = kind == core::LinearKind::kRow
                        ? ref_x.grad().narrow(-1, wspec.offset, wspec.length)
                        : ref_x.grad();
  expect_close(x.grad(), ref_x_grad, "input grad");
  expect_close(layer->weight.grad(), core::slice_of(ref_w.grad(), wspec), "weight grad");
  if (bias) {
    expect_close(layer->bias.grad(), core::slice_of(ref_b.grad(), layer->shard_spec("bias")),
                 "bias grad");
  }
}

}  // namespace

TEST(TpLayers, ColumnParallelLinear) { check_linear(core::LinearKind::kColumn, 12, 16, 1, true); }
TEST(TpLayers, ColumnParallelFusedQkv) { check_linear(core::LinearKind::kColumn, 8, 24, 3, true); }
TEST(TpLayers, RowParallelLinearAddsBiasOnce) {
  check_linear(core::LinearKind::kRow, 16, 12, 1, true);
}

TEST(TpLayers, ReplicatedLinearWithPartialUseSumsGradients) {
  // k/v projections replicated because kv_heads % tp != 0: each rank uses a different part of the
  // output, and the weight gradient must be the sum of the parts.
  WorldTp w;
  const int r = w.tp.rank(), n = w.tp.size();
  core::Linear layer(6, 4 * n, false, core::LinearKind::kReplicated, w.tp, 1, true);
  auto full_w = shared_randn({4 * n, 6}, 21);
  {
    torch::NoGradGuard g;
    layer->weight.copy_(full_w);
  }
  auto x = shared_randn({3, 6}, 22).requires_grad_(true);
  auto y = layer(x);
  y.narrow(-1, 4 * r, 4).sum().backward();  // this rank uses its own quarter
  auto ref_w = full_w.clone().requires_grad_(true);
  auto ref_x = shared_randn({3, 6}, 22).requires_grad_(true);
  torch::nn::functional::linear(ref_x, ref_w).sum().backward();
  expect_close(layer->weight.grad(), ref_w.grad(), "weight grad");
  expect_close(x.grad(), ref_x.grad(), "input grad");
}

TEST(TpLayers, VocabParallelEmbeddingWithPadding) {
  WorldTp w;
  const int64_t vocab = 4 * w.tp.size() + 3;  // not a multiple of tp: the last shard is padded
  core::Embedding emb(vocab, 5, w.tp, true);
  auto full = shared_randn({vocab, 5}, 31);
  {
    torch::NoGradGuard g;
    core::assign_from_full(emb->weight, full, emb->spec());
  }
  auto ids = torch::tensor({0L, 1L, vocab - 1, 5L, vocab - 2, 2L}, torch::kLong).view({2, 3});
  auto ref_w = full.clone().requires_grad_(true);
  auto ref = torch::embedding(ref_w, ids);
  auto y = emb(ids);
  EXPECT_TRUE(torch::equal(y.detach(), ref.detach()));  // exactly one rank contributes each row
  auto g = shared_randn({2, 3, 5}, 32);
  (ref * g).sum().backward();
  (y * g).sum().backward();
  EXPECT_TRUE(torch::equal(core::real_part(emb->weight.grad(), emb->spec()),
                           core::slice_of(ref_w.grad(), emb->spec())));
  // Padding rows never receive gradient.
  const auto& s = emb->spec();
  if (s.length < s.chunk) {
    EXPECT_EQ(emb->weight.grad().narrow(0, s.length, s.chunk - s.length).abs().sum().item<double>(),
              0.0);
  }
}

TEST(TpLayers, VocabParallelCrossEntropyMatchesFullSoftmax) {
  WorldTp w;
  const int64_t vocab = 5 * w.tp.size() + 2;
  auto spec = core::split_spec({vocab, 1}, 0, w.tp.rank(), w.tp.size());
  auto full = (shared_randn({2, 6, vocab}, 41) * 3.0);
  auto labels = torch::randint(0, vocab, {2, 6}, at::detail::createCPUGenerator(42));
  labels[0][3] = core::kIgnoreIndex;
  labels[1][5] = core::kIgnoreIndex;
  labels[1][1] = vocab - 1;  // a target in the padded shard
  auto ref_logits = full.clone().requires_grad_(true);
  auto ref = core::causal_lm_loss(ref_logits, labels);
  ref.sum.backward();
  // This rank's columns plus padding (filled with garbage that must be ignored).
  auto local = torch::full({2, 6, spec.chunk}, 1e4);
  local.narrow(-1, 0, spec.length).copy_(full.narrow(-1, spec.offset, spec.length));
  local.requires_grad_(true);
  auto loss = core::causal_lm_loss(local, labels, spec, w.tp);
  EXPECT_EQ(loss.tokens, ref.tokens);
  EXPECT_NEAR(loss.sum.item<double>(), ref.sum.item<double>(), kRel * ref.sum.item<double>());
  loss.sum.backward();
  expect_close(local.grad().narrow(-1, 0, spec.length),
               ref_logits.grad().narrow(-1, spec.offset, spec.length), "logits grad");
  if (spec.length < spec.chunk) {
    EXPECT_EQ(local.grad().narrow(-1, spec.length, spec.chunk - spec.length).abs().sum().item<double>(),
              0.0);
  }
}
