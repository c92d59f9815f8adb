// The checkpoint package's parts alone (io/checkpoint/): piece geometry (pure), the schema's paths,
// writers, base references and metadata listing; and the fixture written by commit 98fa50c
// (tests/fixtures/README.md), which must keep loading, verifying and resuming.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "base/errors.h"
#include "io/checkpoint.h"
#include "io/checkpoint/pieces.h"
#include "launch/config.h"
#include "launch/trainer.h"
#include "train_helpers.h"

using namespace shardtune;
using namespace shardtune::testing;

namespace {

// GPT-2's fused c_attn weight [3 * 8, 4] = [q | k | v] at tp = 2: the worked example of pieces.h.
core::ShardSpec fused(int tp_rank, int tp = 2) {
  return core::split_spec({24, 4}, 0, tp_rank, tp, 3);
}

}  // namespace

TEST(CheckpointPieces, GeometryOfSplitFusedAndReplicatedTensors) {
  const io::Pieces p = io::pieces_of(fused(1));
  EXPECT_EQ(p.dim, 0);
  EXPECT_EQ(p.parts, 3);
  EXPECT_EQ(p.n, 8);
  EXPECT_EQ(p.chunk, 4);
  EXPECT_EQ(p.count, 2);
  EXPECT_EQ(io::piece_index(fused(1)), 1);
  EXPECT_EQ(io::piece_shape({24, 4}, p, 1), (std::vector<int64_t>{12, 4}));
  EXPECT_EQ(io::chunk_shape({24, 4}, p), (std::vector<int64_t>{4, 4}));
  // Piece 1 = rows 4..8, 12..16, 20..24: start 4, stride 8, 3 blocks of 4 rows.
  const io::Hyperslab h = io::piece_hyperslab({24, 4}, p, 1);
  EXPECT_FALSE(h.whole);
  EXPECT_EQ(h.start, (std::vector<int64_t>{4, 0}));
  EXPECT_EQ(h.stride, (std::vector<int64_t>{8, 1}));
  EXPECT_EQ(h.count, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(h.block, (std::vector<int64_t>{4, 4}));
  // Replicated: one piece, the whole dataspace, contiguous layout.
  const io::Pieces r = io::pieces_of(core::replicated_spec({5, 3}));
  EXPECT_EQ(r.count, 1);
  EXPECT_TRUE(io::piece_hyperslab({5, 3}, r, 0).whole);
  EXPECT_TRUE(io::chunk_shape({5, 3}, r).empty());
  // An uneven vocabulary split: 5 rows over 4 ranks in chunks of 2; rank 3 holds only padding.
  const auto last = core::split_spec({5, 3}, 0, 3, 4);
  EXPECT_EQ(io::pieces_of(last).count, 3);
  EXPECT_EQ(io::piece_index(last), -1);
  EXPECT_EQ(io::pieces_of(last).length(2), 1);
}

TEST(CheckpointPieces, ReadersTakeExactlyTheOverlappingPieces) {
  const io::Pieces saved = io::pieces_of(fused(0));  // saved at tp = 2
  // Same layout: one piece, read straight into place.
  EXPECT_TRUE(io::reads_one_piece(saved, fused(1)));
  EXPECT_EQ(io::overlapping(saved, fused(1)).first, 1);
  EXPECT_EQ(io::overlapping(saved, fused(1)).last, 2);
  // tp = 1 (replicated reader) needs both; tp = 4 rank 3 needs half of piece 1.
  const auto all = io::overlapping(saved, core::replicated_spec({24, 4}));
  EXPECT_EQ(all.last - all.first, 2);
  EXPECT_FALSE(io::reads_one_piece(saved, core::replicated_spec({24, 4})));
  const auto quarter = io::overlapping(saved, fused(3, 4));
  EXPECT_EQ(quarter.first, 1);
  EXPECT_EQ(quarter.last, 2);
  EXPECT_FALSE(io::reads_one_piece(saved, fused(3, 4)));
  // Placing every piece into a global buffer rebuilds the tensor.
  const auto full = torch::arange(96, torch::kFloat).view({24, 4});
  auto rebuilt = torch::zeros({24, 4});
  for (int64_t p = 0; p < saved.count; ++p) {
    io::place_piece(rebuilt, core::slice_of(full, fused(static_cast<int>(p))), saved, p);
  }
  EXPECT_TRUE(torch::equal(rebuilt, full));
}

TEST(CheckpointPieces, StoredAttributesAreChecked) {
  io::Pieces p;
  EXPECT_TRUE(io::pieces_from_attributes({24, 4}, 0, 3, 4, p));
  EXPECT_EQ(p.count, 2);
  EXPECT_TRUE(io::pieces_from_attributes({24, 4}, -1, 1, 0, p));
  EXPECT_EQ(p.dim, -1);
  EXPECT_FALSE(io::pieces_from_attributes({24, 4}, 2, 1, 4, p));  // no dim 2
  EXPECT_FALSE(io::pieces_from_attributes({24, 4}, 0, 5, 4, p));  // 24 rows in 5 parts
  EXPECT_FALSE(io::pieces_from_attributes({24, 4}, 0, 3, 0, p));  // empty chunks
}

TEST(CheckpointSchema, PathsAndNames) {
  EXPECT_EQ(io::model_tensor_path("model.norm.weight"), "/model/model.norm.weight");
  EXPECT_EQ(io::exp_avg_path("lm_head.weight"), "/optimizer/lm_head.weight/exp_avg");
  EXPECT_EQ(io::exp_avg_sq_path("lm_head.weight"), "/optimizer/lm_head.weight/exp_avg_sq");
  EXPECT_EQ(io::rng_path("default"), "/rng/default");
  EXPECT_EQ(io::step_file_name(100), "step-00000100.h5");
  EXPECT_EQ(io::layout_name(2, 1, 0), "tp=2,dp=1,zero=0");
}

TEST(CheckpointSchema, EveryPieceHasExactlyOneWriterOnAnyGrid) {
  for (const auto& [tp, dp] : std::vector<std::pair<int, int>>{{1, 1}, {2, 1}, {1, 4}, {2, 2}}) {
    SCOPED_TRACE("tp " + std::to_string(tp) + " dp " + std::to_string(dp));
    std::map<std::pair<size_t, int64_t>, int> writers;  // (tensor, piece) -> count
    const std::vector<bool> sharded = {true, false, true, false, false};
    for (int rank = 0; rank < tp * dp; ++rank) {
      const io::WriterLayout w{rank, tp * dp, rank / tp, dp};
      for (size_t k = 0; k < sharded.size(); ++k) {
        const auto spec = sharded[k] ? core::split_spec({8, 2}, 0, rank % tp, tp)
                                     : core::replicated_spec({8, 2});
        if (io::writes_piece(spec, k, w)) ++writers[{k, io::piece_index(spec)}];
      }
    }
    for (size_t k = 0; k < sharded.size(); ++k) {
      for (int64_t p = 0; p < (sharded[k] ? tp : 1); ++p) EXPECT_EQ((writers[{k, p}]), 1) << k;
    }
  }
}

TEST(CheckpointSchema, BaseReferencesRoundTrip) {
  EXPECT_EQ(io::parse_base_reference("", "f").kind, io::BaseReference::Kind::kNone);
  const auto seed = io::parse_base_reference(io::seed_base(42), "f");
  EXPECT_EQ(seed.kind, io::BaseReference::Kind::kSeed);
  EXPECT_EQ(seed.seed, "42");
  const auto file = io::parse_base_reference(io::file_base("/a b/c.h5", "00ff"), "f");
  EXPECT_EQ(file.kind, io::BaseReference::Kind::kFile);
  EXPECT_EQ(file.path, "/a b/c.h5");
  EXPECT_EQ(file.digest, "00ff");
  EXPECT_THROW(io::parse_base_reference("/no/digest.h5", "f"), UserError);
}

TEST(CheckpointSchema, DescribeListsTheFieldsOfTheFilesFormat) {
  io::CheckpointInfo info;
  info.step = 3;
  const std::string v2 = io::describe(info);
  EXPECT_NE(v2.find("step: 3\n"), std::string::npos) << v2;
  EXPECT_NE(v2.find("base_model: (self-contained)\n"), std::string::npos) << v2;
  EXPECT_NE(v2.find("checksum_algorithm: fnv1a64x4\n"), std::string::npos) << v2;
  info.format_version = 1;
  const std::string v1 = io::describe(info);
  EXPECT_EQ(v1.find("optimizer_step"), std::string::npos) << v1;  // a format 2 field
  EXPECT_NE(v1.find("format_version: 1\n"), std::string::npos) << v1;
}

// ---- the checkpoint written by commit 98fa50c ---------------------------------------------------

namespace {
const std::string kFixture =
    std::string(SHARDTUNE_SOURCE_DIR) + "/tests/fixtures/ckpt-98fa50c-tp2-step3.h5";
}  // namespace

TEST(CheckpointFixture, MetadataTensorsAndChecksumsOfAnOldFileRead) {
  const auto info = io::read_checkpoint_info(kFixture);
  EXPECT_EQ(info.format_version, 2);
  EXPECT_EQ(info.step, 3);
  EXPECT_EQ(info.consumed_samples, 12);
  EXPECT_EQ(info.optimizer_step, 3);
  EXPECT_EQ(info.layout, "tp=2,dp=1,zero=0");
  EXPECT_EQ(info.world, 2);
  EXPECT_EQ(info.strategy, "sft");
  EXPECT_EQ(info.tokenizer, "byte-v1");
  EXPECT_EQ(info.base_model, "");
  const auto config = core::ModelConfig::from_json(info.model_config);
  EXPECT_EQ(config.hidden_size, 16);
  EXPECT_TRUE(config.tie_word_embeddings);
  // Every tensor reads back and passes its per-piece checksums (fnv1a64x4 as the file stores it).
  const auto tensors = io::list_checkpoint_tensors(kFixture);
  EXPECT_EQ(tensors.size(), 35u);
  for (const auto& e : tensors) {
    std::vector<io::CheckpointTensor> t{
        {e.path, torch::empty(e.shape, e.dtype == "uint8" ? torch::kByte : torch::kFloat)}};
    EXPECT_NO_THROW(io::load_checkpoint_tensors(kFixture, t)) << e.path;
    if (e.path == "/model/model.embed_tokens.weight") EXPECT_EQ(e.sharding, "dim 0 in 2 pieces");
  }
  // The digest base-model references record, computed independently from h5dump's listing in
  // Python (tests/fixtures/README.md).
  EXPECT_EQ(io::checkpoint_digest(kFixture), "c1de48234de0e52a");
}

TEST(CheckpointFixture, ResumesAtAnotherLayoutAndContinuesTheRun) {
  const auto dir = temp_dir("ckpt_fixture_resume");
  launch::Config c;
  std::string help;
  ASSERT_TRUE(launch::parse_config(
      {"--config", std::string(SHARDTUNE_SOURCE_DIR) + "/tests/fixtures/ckpt-98fa50c-tp2.ini",
       "--train.out_dir=" + dir + "/run", "--checkpoint.dir=" + dir + "/ckpt", "--parallel.tp=1",
       "--checkpoint.resume=" + kFixture},
      c, help));
  auto grid = local_grid();
  launch::Trainer t(c, grid);
  ASSERT_EQ(t.steps_done(), 3);
  // The stored parameters, exactly.
  for (auto& p : t.model().named_parameters()) {
    std::vector<io::CheckpointTensor> stored{
        {io::model_tensor_path(p.key()), torch::empty_like(p.value())}};
    io::load_checkpoint_tensors(kFixture, stored);
    EXPECT_TRUE(torch::equal(p.value(), stored[0].tensor)) << p.key();
  }
  // Steps 4..6 of the uninterrupted TP=2 run that wrote it (README.md). TP=1 sums the vocabulary
  // and the attention in another order than TP=2: fp32 rounding, well inside 1e-5.
  for (double expected : {5.561251101286515, 5.556527676789657, 5.562985295834748}) {
    const double loss = t.step().loss;
    EXPECT_NEAR(loss, expected, 1e-5 * expected) << "step " << t.steps_done();
  }
}
