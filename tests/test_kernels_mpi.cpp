// The fused cross-entropy on a TP-sharded vocabulary (mpiexec -np 2 and -np 4, the TP group is the
// world): loss and logit gradients of each rank's shard against the unsharded loss computed on
// every rank from the same full logits. The vocabulary (1003) does not divide by the TP size, so
// the last shard has padding columns. Tolerance: the shards' sums of exponentials are rescaled to
// the global maximum and added across ranks, a different summation order than one rank's: 2e-6
// relative to the largest value (fp32). Then whole TP-sharded models (ModelKernelsTp): the fused
// path against the reference path at the same TP size.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <map>
#include <string>

#include "core/kernels/fused_ops.h"
#include "core/loss.h"
#include "core/model.h"
#include "core/shard.h"
#include "mpi_test_main.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"

using namespace shardtune;

namespace {

torch::Tensor shared_randn(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::normal(0.0, 3.0, shape, gen, torch::TensorOptions().dtype(torch::kFloat));
}

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double rel, const char* what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double err = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
  const double scale = b.abs().max().item<double>();
  EXPECT_LE(err, rel * scale + 1e-12) << what << ": max error " << err << " (scale " << scale << ")";
}

// A tiny model's forward and backward with the TP group = the world (fused or reference kernels):
// logits gathered over the vocabulary, this rank's gradient shards.
struct TpPass {
  torch::Tensor logits;
  double loss = 0.0;
  std::map<std::string, torch::Tensor> grads;
};

TpPass tp_pass(const std::string& family, bool fused, parallel::RankGrid& grid) {
  core::ModelConfig c;
  c.family = family;
  c.vocab_size = 261;  // not a multiple of 2: the last vocabulary shard has a padding row
  c.hidden_size = 32;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = family == "llama" ? 2 : 0;
  c.intermediate_size = 64;
  c.max_position_embeddings = 64;
  c.init_std = 0.2;
  auto model = core::build_model(c, 5, parallel::TpGroup{grid.tp_ptr()});
  core::ComputeOptions compute;
  compute.fused = fused;
  model->set_compute(compute);
  model->train();
  auto ids = torch::randint(0, 261, {3, 20}, at::detail::createCPUGenerator(1), torch::kLong);
  auto logits = model->forward(ids, {});
  auto loss = core::causal_lm_loss(logits, ids, model->vocab_spec(), model->tp(), fused);
  loss.sum.backward();
  TpPass out;
  out.logits = model->gather_logits(logits.detach());
  out.loss = loss.sum.item<double>();
  for (const auto& p : model->named_parameters()) {
    if (p.value().grad().defined()) out.grads[p.key()] = p.value().grad().clone();
  }
  return out;
}

}  // namespace

TEST(FusedCrossEntropyTp, ShardsEqualTheFullVocabularyLossAndGradient) {
  auto& mpi = shardtune::testing::mpi_runtime();
  auto grid = parallel::RankGrid::create(mpi.world(), mpi.world_size());
  const int tp = mpi.world_size(), rank = mpi.rank();
  const int64_t B = 2, T = 9, V = 1003;
  auto spec = core::split_spec({V, 16}, 0, rank, tp);  // the embedding's vocabulary split
  const int64_t chunk = spec.local_shape()[0];
  auto full = shared_randn({B, T, V}, 7);
  auto labels = torch::randint(0, V, {B, T}, at::detail::createCPUGenerator(8), torch::kLong);
  labels[1][4] = -100;
  // Reference on the full vocabulary.
  auto full_leaf = full.clone().requires_grad_();
  auto ref = core::causal_lm_loss(full_leaf, labels);
  auto g_ref = torch::autograd::grad({ref.sum}, {full_leaf})[0];
  // This rank's columns, padded to the chunk width with garbage the kernel must ignore.
  auto local = torch::full({B, T, chunk}, 1e4f);
  local.narrow(2, 0, spec.length).copy_(full.narrow(2, spec.offset, spec.length));
  local.requires_grad_();
  auto per_row = kernels::fused_cross_entropy(local, kernels::next_token_targets(labels),
                                              spec.offset, spec.length, grid.tp_ptr().get());
  expect_close(per_row.sum(), ref.sum, 2e-6, "loss");
  auto g = torch::autograd::grad({per_row.sum()}, {local})[0];
  expect_close(g.narrow(2, 0, spec.length), g_ref.narrow(2, spec.offset, spec.length), 2e-6,
               "d logits of this shard");
  EXPECT_EQ(g.narrow(2, spec.length, chunk - spec.length).abs().sum().item<float>(), 0.0f);
}

// The fused path in a TP-sharded model (np 2: kv heads split; np 4: kv heads replicated, as
// kv_heads = 2 does not divide by 4) against the reference path at the same TP size, within the
// tolerances of tests/test_kernels_model.cpp.
TEST(ModelKernelsTp, FusedMatchesReferenceInTpShardedModels) {
  auto& mpi = shardtune::testing::mpi_runtime();
  auto grid = parallel::RankGrid::create(mpi.world(), mpi.world_size());
  for (const std::string family : {"llama", "gpt2"}) {
    const auto ref = tp_pass(family, false, grid);
    const auto fused = tp_pass(family, true, grid);
    expect_close(fused.logits, ref.logits, 2e-5, (family + " logits").c_str());
    EXPECT_NEAR(fused.loss, ref.loss, 2e-6 * std::abs(ref.loss)) << family;
    ASSERT_EQ(fused.grads.size(), ref.grads.size());
    for (const auto& [name, g] : ref.grads) expect_close(fused.grads.at(name), g, 1e-4, name.c_str());
  }
}
