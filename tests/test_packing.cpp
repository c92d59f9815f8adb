// Sequence packing ([data] packing, io/packing.h): rows of several documents, their document ids
// in the attention mask (core/batch.h), positions restarting per document and attention kept
// inside each document (core/layers.h). The model-level check: every document's logits in a
// packed row equal its logits alone, for both families, with and without fused kernels, so a
// packed row's loss is exactly the sum of its documents' losses.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "base/errors.h"
#include "core/batch.h"
#include "core/layers.h"
#include "core/loss.h"
#include "core/model.h"
#include "io/packing.h"

using namespace shardtune;
using namespace shardtune::core;

namespace {

Example document(int64_t n, int64_t salt) {
  Example e;
  for (int64_t i = 0; i < n; ++i) e.tokens.push_back((5 * i + 3 * salt + 1) % 47 + 1);
  e.labels = e.tokens;
  e.labels[0] = kIgnoreIndex;
  return e;
}

ModelConfig tiny(const std::string& family) {
  ModelConfig c;
  c.family = family;
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = family == "llama" ? 2 : 0;
  c.intermediate_size = 24;
  c.max_position_embeddings = 32;
  return c;
}

}  // namespace

TEST(Packing, GreedyRowsInOrderWithTheirDocumentLengths) {
  std::vector<Example> docs;
  for (int64_t n : {5, 6, 9, 3, 12, 2}) docs.push_back(document(n, n));
  auto a_label = docs[1].labels;
  const auto rows = io::pack_examples(docs, 12);
  // 5+6 | 9+3 | 12 | 2: a row closes when the next document would overflow it.
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].documents, (std::vector<int64_t>{5, 6}));
  EXPECT_EQ(rows[1].documents, (std::vector<int64_t>{9, 3}));
  EXPECT_TRUE(rows[2].documents.empty());  // one document: an ordinary example
  EXPECT_TRUE(rows[3].documents.empty());
  EXPECT_EQ(rows[0].tokens.size(), 11u);
  EXPECT_EQ(rows[0].tokens[5], docs[1].tokens[0]);
  // Nothing predicts a document's first token; the rest of its labels are kept.
  EXPECT_EQ(rows[0].labels[5], kIgnoreIndex);
  EXPECT_EQ(std::vector<int64_t>(rows[0].labels.begin() + 6, rows[0].labels.end()),
            std::vector<int64_t>(a_label.begin() + 1, a_label.end()));
  EXPECT_THROW(io::pack_examples({document(13, 1)}, 12), UserError);
  EXPECT_TRUE(io::pack_examples({}, 12).empty());
}

TEST(Packing, MaskHoldsDocumentIdsAndPositionsRestart) {
  const auto rows = io::pack_examples({document(3, 1), document(2, 2), document(4, 3)}, 9);
  ASSERT_EQ(rows.size(), 1u);
  const Example single = document(4, 4);
  const auto batch = collate({&rows[0], &single}, /*pad_id=*/0);
  const auto mask = batch.attention_mask;
  EXPECT_TRUE(mask[0].equal(torch::tensor({1, 1, 1, 2, 2, 3, 3, 3, 3}, torch::kLong)));
  EXPECT_TRUE(mask[1].equal(torch::tensor({1, 1, 1, 1, 0, 0, 0, 0, 0}, torch::kLong)));
  const auto pos = position_ids_from_mask(mask);
  EXPECT_TRUE(pos[0].equal(torch::tensor({0, 1, 2, 0, 1, 0, 1, 2, 3}, torch::kLong)));
  EXPECT_TRUE(pos[1].narrow(0, 0, 4).equal(torch::arange(4, torch::kLong)));
  // Left padding (generation) still numbers the real tokens from 0.
  const auto left = position_ids_from_mask(torch::tensor({{0, 0, 1, 1, 1}}, torch::kLong));
  EXPECT_TRUE(left[0].narrow(0, 2, 3).equal(torch::arange(3, torch::kLong)));
  // Query 4 (document 2) sees keys 3 and 4 only; query 2 sees 0..2.
  const auto bias = causal_attention_bias(mask, torch::kFloat)[0][0];
  const auto visible = bias.eq(0);
  EXPECT_TRUE(visible[4].equal(torch::tensor({0, 0, 0, 1, 1, 0, 0, 0, 0}, torch::kBool)));
  EXPECT_TRUE(visible[2].equal(torch::tensor({1, 1, 1, 0, 0, 0, 0, 0, 0}, torch::kBool)));
}

TEST(Packing, EachDocumentGivesTheLogitsItGivesAlone) {
  torch::NoGradGuard no_grad;
  std::vector<Example> docs;
  for (int64_t n : {7, 4, 9, 5}) docs.push_back(document(n, n));
  const auto rows = io::pack_examples(docs, 32);
  ASSERT_EQ(rows.size(), 1u);
  for (const std::string family : {"llama", "gpt2"}) {
    for (const bool fused : {true, false}) {
      SCOPED_TRACE(family + (fused ? " fused" : " unfused"));
      auto model = build_model(tiny(family), 11);
      model->set_compute(ComputeOptions{fused, false, false});
      model->eval();
      const auto packed = collate({&rows[0]}, 0);
      const auto packed_logits = model->forward(packed.input_ids, packed.attention_mask)[0];
      const auto packed_loss = causal_lm_loss(model->forward(packed.input_ids,
                                                             packed.attention_mask),
                                              packed.labels);
      double loss_sum = 0.0;
      int64_t tokens = 0, offset = 0;
      for (const auto& d : docs) {
        const auto alone = collate({&d}, 0);
        const auto logits = model->forward(alone.input_ids, alone.attention_mask)[0];
        const auto n = static_cast<int64_t>(d.tokens.size());
        EXPECT_TRUE(torch::allclose(packed_logits.narrow(0, offset, n), logits, 1e-5, 1e-5))
            << "document at " << offset << ": max diff "
            << (packed_logits.narrow(0, offset, n) - logits).abs().max().item<double>();
        const auto loss = causal_lm_loss(logits.unsqueeze(0), alone.labels);
        loss_sum += loss.sum.item<double>();
        tokens += loss.tokens;
        offset += n;
      }
      EXPECT_EQ(packed_loss.tokens, tokens);
      EXPECT_NEAR(packed_loss.sum.item<double>(), loss_sum, 1e-4 * std::abs(loss_sum));
    }
  }
}
