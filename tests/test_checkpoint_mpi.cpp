// Sharded checkpoints on two ranks (label mpi): collective parallel-HDF5 writes of hand-made shard
// layouts read back at other layouts; trainer checkpoints saved at TP=2 x DP=1 and loaded at
// TP=1 x DP=2 (with and without ZeRO-1) and back, every tensor equal, LoRA adapters included; exact
// resume on the same layout.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "io/checkpoint.h"
#include "launch/trainer.h"
#include "mpi_test_main.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"
#include "train_helpers.h"

using namespace shardtune;
using namespace shardtune::testing;

namespace {

parallel::Communicator& world() { return *mpi_runtime().world(); }

// A directory shared by the ranks: rank 0 creates it empty.
std::string shared_dir(const std::string& name) {
  const auto dir = std::filesystem::path(SHARDTUNE_BINARY_DIR) / "test-tmp" / name;
  if (world().rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  world().barrier();
  return dir.string();
}

struct Synthetic {
  std::string path;
  std::vector<int64_t> shape;
  int dim;        // -1 replicated
  int64_t parts;
};

// Shapes covering row/column splits, a fused 3-part tensor, an uneven (padded) split and a
// replicated vector.
const std::vector<Synthetic> kTensors = {
    {"/model/rows", {6, 4}, 0, 1},  {"/model/cols", {4, 6}, 1, 1},
    {"/model/fused", {6, 4}, 0, 3}, {"/model/vocab", {5, 3}, 0, 1},
    {"/model/norm", {3}, -1, 1},    {"/optimizer/rows/exp_avg", {6, 4}, 0, 1},
};

torch::Tensor full_value(size_t i, const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return (torch::arange(n, torch::kFloat) * 0.25 + static_cast<double>(i) * 100.0).view(shape);
}

core::ShardSpec spec_for(const Synthetic& t, int tp_rank, int tp) {
  if (t.dim < 0) return core::replicated_spec(t.shape);
  return core::split_spec(t.shape, t.dim, tp_rank, tp, t.parts);
}

// This rank's local tensors at a layout of `tp` (tp_rank = rank % tp), padding set to -7 so that a
// leak of padding into the file would show.
std::vector<io::ShardedTensor> local_tensors(int tp) {
  const int rank = world().rank(), size = world().size();
  const int tp_rank = rank % tp, dp_rank = rank / tp, dp = size / tp;
  std::vector<io::ShardedTensor> out;
  for (size_t i = 0; i < kTensors.size(); ++i) {
    const auto spec = spec_for(kTensors[i], tp_rank, tp);
    auto local = torch::full(spec.local_shape(), -7.0f);
    core::assign_from_full(local, full_value(i, kTensors[i].shape), spec);
    if (spec.sharded() && spec.length < spec.chunk) {
      // assign_from_full zeroes padding; make it visible instead.
      auto pad = local.narrow(spec.dim, spec.length, spec.chunk - spec.length);
      pad.fill_(-7.0f);
    }
    const bool write = spec.sharded() ? dp_rank == static_cast<int>(i) % dp
                                      : rank == static_cast<int>(i) % size;
    out.push_back({kTensors[i].path, local, spec, write});
  }
  return out;
}

io::CheckpointInfo info_at(int64_t step) {
  io::CheckpointInfo info;
  info.shardtune_version = "test";
  info.model_config = "{}";
  info.strategy = "sft";
  info.strategy_options = "{}";
  info.tokenizer = "byte-v1";
  info.layout = "synthetic";
  info.world = world().size();
  info.step = step;
  return info;
}

void expect_loads_at(const std::string& file, int tp) {
  const int tp_rank = world().rank() % tp;
  for (size_t i = 0; i < kTensors.size(); ++i) {
    const auto spec = spec_for(kTensors[i], tp_rank, tp);
    std::vector<io::ShardedTensor> one{
        {kTensors[i].path, torch::full(spec.local_shape(), 99.0f), spec, false}};
    io::load_sharded_tensors(file, one);
    auto expected = torch::zeros(spec.local_shape());
    core::assign_from_full(expected, full_value(i, kTensors[i].shape), spec);
    EXPECT_TRUE(torch::equal(one[0].local, expected))
        << kTensors[i].path << " at tp=" << tp << " rank " << world().rank();
  }
}

}  // namespace

namespace {
// Saves the synthetic tensors at tp = 1 and 2 and reads them back at both.
void round_trip_layouts(const std::string& dir, const io::SaveOptions& options) {
  for (int save_tp : {1, 2}) {
    const auto tensors = local_tensors(save_tp);
    const auto file = io::save_sharded_checkpoint(dir + "/tp" + std::to_string(save_tp),
                                                  info_at(save_tp), tensors, world(), options);
    for (int load_tp : {1, 2}) expect_loads_at(file, load_tp);
    // Full reads by path (the single-process API) see the global tensors.
    for (size_t i = 0; i < kTensors.size(); ++i) {
      std::vector<io::CheckpointTensor> full{{kTensors[i].path, torch::zeros(kTensors[i].shape)}};
      io::load_checkpoint_tensors(file, full);
      EXPECT_TRUE(torch::equal(full[0].tensor, full_value(i, kTensors[i].shape))) << kTensors[i].path;
    }
    // Sharded datasets record their pieces (one per TP rank that saved them).
    for (const auto& e : io::list_checkpoint_tensors(file)) {
      if (e.path == "/model/cols") {
        EXPECT_EQ(e.sharding, save_tp == 1 ? "replicated" : "dim 1 in 2 pieces");
      }
      if (e.path == "/model/fused" && save_tp == 2) {
        EXPECT_EQ(e.sharding, "dim 0 in 2 pieces (3 parts)");
      }
    }
    EXPECT_EQ(io::read_checkpoint_info(file).step, save_tp);
  }
}
}  // namespace

TEST(ShardedCheckpointIo, AnySavedLayoutLoadsIntoAnyOther) {
  ASSERT_EQ(world().size(), 2);
  const auto dir = shared_dir("ckpt_io_layouts");
  // Both MPI-IO transfer modes (independent is the default).
  for (const std::string xfer : {"independent", "collective"}) {
    SCOPED_TRACE(xfer);
    io::SaveOptions options;
    options.collective_transfer = xfer == "collective";
    round_trip_layouts(dir + "/" + xfer, options);
  }
}

TEST(ShardedCheckpointIo, TwoWritersOfOnePieceIsAnError) {
  const auto dir = shared_dir("ckpt_io_two_writers");
  auto tensors = local_tensors(1);
  for (auto& t : tensors) t.write = true;  // both DP replicas would write every tensor
  EXPECT_THROW(io::save_sharded_checkpoint(dir, info_at(1), tensors, world(), {}),
               std::logic_error);
  world().barrier();
  EXPECT_FALSE(std::filesystem::exists(dir + "/latest"));
}

// ---- trainer checkpoints across layouts -----------------------------------------------------

namespace {

launch::Config trainer_config(const std::string& dir, int tp, int zero,
                              const std::string& strategy = "sft") {
  auto c = tiny_config(dir + "/out");
  c.strategy = strategy;
  c.parallel.tp = tp;
  c.parallel.zero = zero;
  c.train.steps = 20;
  c.train.weight_decay = 0.01;
  c.checkpoint.dir = dir + "/ckpt";
  c.checkpoint.keep_last = 0;
  return c;
}

// Every /model and /optimizer tensor of two files, bitwise.
void expect_same_tensors(const std::string& a, const std::string& b) {
  const auto la = io::list_checkpoint_tensors(a);
  const auto lb = io::list_checkpoint_tensors(b);
  int compared = 0;
  for (const auto& e : la) {
    if (e.path.rfind("/rng", 0) == 0) continue;
    std::vector<io::CheckpointTensor> ta{{e.path, torch::empty(e.shape)}};
    std::vector<io::CheckpointTensor> tb{{e.path, torch::empty(e.shape)}};
    io::load_checkpoint_tensors(a, ta);
    io::load_checkpoint_tensors(b, tb);
    EXPECT_TRUE(torch::equal(ta[0].tensor, tb[0].tensor)) << e.path;
    ++compared;
  }
  EXPECT_GE(compared, 12);
  size_t nb = 0;
  for (const auto& e : lb) nb += e.path.rfind("/rng", 0) != 0;
  EXPECT_EQ(static_cast<size_t>(compared), nb);
}

struct LayoutRun {
  std::string file;             // checkpoint after `steps_before`
  std::vector<double> after;    // losses of the steps after it
};

// Trains `before` steps at a layout (or resumes from `resume`), saves, trains `after` more.
LayoutRun run_layout(const std::string& dir, int tp, int zero, const std::string& resume, int before,
               int after, const std::string& strategy = "sft") {
  auto grid = parallel::RankGrid::create(mpi_runtime().world(), tp);
  auto c = trainer_config(dir, tp, zero, strategy);
  c.checkpoint.resume = resume;
  launch::Trainer t(c, grid);
  for (int i = 0; i < before; ++i) t.step();
  LayoutRun r;
  r.file = t.save();
  for (int i = 0; i < after; ++i) r.after.push_back(t.step().loss);
  return r;
}

}  // namespace

TEST(ShardedCheckpointTrainer, Tp2ToDp2WithAndWithoutZeroAndBack) {
  const auto dir = shared_dir("ckpt_reshard");
  const LayoutRun a = run_layout(dir + "/tp2", 2, 0, "", 3, 3);
  for (int zero : {0, 1}) {
    SCOPED_TRACE("zero=" + std::to_string(zero));
    const auto sub = dir + "/dp2_zero" + std::to_string(zero);
    const LayoutRun b = run_layout(sub, 1, zero, a.file, 0, 3);
    expect_same_tensors(a.file, b.file);
    EXPECT_EQ(io::read_checkpoint_info(b.file).step, 3);
    ASSERT_EQ(b.after.size(), a.after.size());
    for (size_t i = 0; i < a.after.size(); ++i) {
      EXPECT_NEAR(b.after[i], a.after[i], 1e-6 * std::abs(a.after[i])) << "step " << 4 + i;
    }
    // And back: DP=2 (ZeRO shards) -> TP=2.
    const LayoutRun back = run_layout(sub + "/back", 2, 0, b.file, 0, 0);
    expect_same_tensors(b.file, back.file);
  }
}

TEST(ShardedCheckpointTrainer, ResumeOnSameLayoutIsBitwise) {
  for (int tp : {1, 2}) {
    const int zero = tp == 1 ? 1 : 0;
    SCOPED_TRACE("tp=" + std::to_string(tp));
    const auto dir = shared_dir("ckpt_bitwise_tp" + std::to_string(tp));
    auto grid = parallel::RankGrid::create(mpi_runtime().world(), tp);
    auto c = trainer_config(dir + "/a", tp, zero);
    c.model.dropout = 0.1;  // the RNG streams must be restored too
    expect_resumed_bitwise(c, grid, stop_and_save(c, grid, 6, 3));
  }
}

TEST(ShardedCheckpointTrainer, LoraAdaptersReshardTp2ToDp2ZeroAndBack) {
  const auto dir = shared_dir("ckpt_reshard_lora");
  const LayoutRun a = run_layout(dir + "/tp2", 2, 0, "", 3, 0, "lora");
  const LayoutRun b = run_layout(dir + "/dp2", 1, 1, a.file, 0, 0, "lora");
  expect_same_tensors(a.file, b.file);
  const LayoutRun back = run_layout(dir + "/back", 2, 0, b.file, 0, 0, "lora");
  expect_same_tensors(b.file, back.file);
  for (const auto& e : io::list_checkpoint_tensors(a.file)) {
    EXPECT_EQ(e.path.find("embed_tokens"), std::string::npos) << e.path;  // frozen base: not stored
  }
}

// The checkpoint written by commit 98fa50c at TP=2 (tests/fixtures/README.md), resumed on the
// layout that wrote it (RNG streams restored): steps 4..6 give the losses its uninterrupted run
// logged (1e-5 relative: another CPU's kernels may change the last bits, as for the golden file).
TEST(ShardedCheckpointTrainer, FixtureFrom98fa50cResumesOnItsLayout) {
  const auto dir = shared_dir("ckpt_fixture_tp2");
  const std::string src = SHARDTUNE_SOURCE_DIR;
  launch::Config c;
  std::string help;
  ASSERT_TRUE(launch::parse_config(
      {"--config", src + "/tests/fixtures/ckpt-98fa50c-tp2.ini", "--train.out_dir=" + dir + "/run",
       "--checkpoint.dir=" + dir + "/ckpt",
       "--checkpoint.resume=" + src + "/tests/fixtures/ckpt-98fa50c-tp2-step3.h5"},
      c, help));
  ASSERT_EQ(c.parallel.tp, 2);
  auto grid = parallel::RankGrid::create(mpi_runtime().world(), 2);
  launch::Trainer t(c, grid);
  ASSERT_EQ(t.steps_done(), 3);
  for (double expected : {5.561251101286515, 5.556527676789657, 5.562985295834748}) {
    EXPECT_NEAR(t.step().loss, expected, 1e-5 * expected) << "step " << t.steps_done();
  }
}
