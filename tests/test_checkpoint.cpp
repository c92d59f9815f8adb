// Checkpoints in one process: the file format (pieces, checksums, attributes), every bad-file case
// giving one UserError that names file and tensor, `latest` / keep_last handling, strategy and
// model mismatches, exact resume of the in-process Trainer, the stop signal, and strategy-aware
// contents (LoRA: adapters only, on the seeded base; Freeze: unfrozen blocks on an init_from base).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <thread>

#include "base/errors.h"
#include "io/checkpoint.h"
#include "launch/signals.h"
#include "launch/trainer.h"
#include "train_helpers.h"

using namespace shardtune;
using namespace shardtune::testing;
namespace fs = std::filesystem;

namespace {

io::CheckpointInfo test_info(int64_t step) {
  io::CheckpointInfo info;
  info.shardtune_version = "test";
  info.model_config = "{}";
  info.strategy = "sft";
  info.strategy_options = "{}";
  info.tokenizer = "byte-v1";
  info.layout = "tp=1,dp=1,zero=0";
  info.step = step;
  return info;
}

// A tensor whose bytes are easy to find in the file.
torch::Tensor marker(int64_t n, float v) { return torch::full({n}, v); }

std::string save_sample(const std::string& dir, int64_t step, int keep_last = 0) {
  std::vector<io::CheckpointTensor> t{
      {"/model/a.weight", torch::arange(12, torch::kFloat).view({3, 4})},
      {"/model/marker", marker(256, 1234.5f)},
      {"/optimizer/a.weight/exp_avg", torch::ones({3, 4}, torch::kDouble)},
  };
  return io::save_checkpoint(dir, test_info(step), t, keep_last);
}

}  // namespace

TEST(CheckpointFormat, RoundTripInfoAndTensors) {
  const auto dir = temp_dir("ckpt_roundtrip");
  auto info = test_info(7);
  info.tp = 2;
  info.dp = 3;
  info.zero = 1;
  info.world = 6;
  info.layout = io::layout_name(2, 3, 1);
  info.consumed_samples = 56;
  info.sampler_seed = 99;
  info.optimizer_step = 7;
  info.base_model = "seed:99";
  std::vector<io::CheckpointTensor> t{{"/model/x", torch::randn({5, 2})},
                                      {"/rng/default", torch::randint(0, 255, {1, 40}, torch::kByte)},
                                      {"/model/i", torch::arange(4, torch::kLong)}};
  const auto file = io::save_checkpoint(dir, info, t, 0);
  EXPECT_EQ(file, dir + "/step-00000007.h5");
  EXPECT_EQ(io::resolve_checkpoint(dir), file);
  const auto back = io::read_checkpoint_info(file);
  EXPECT_EQ(back.format_version, io::kCheckpointFormatVersion);
  EXPECT_EQ(back.tp, 2);
  EXPECT_EQ(back.dp, 3);
  EXPECT_EQ(back.zero, 1);
  EXPECT_EQ(back.world, 6);
  EXPECT_EQ(back.step, 7);
  EXPECT_EQ(back.consumed_samples, 56);
  EXPECT_EQ(back.sampler_seed, 99);
  EXPECT_EQ(back.optimizer_step, 7);
  EXPECT_EQ(back.base_model, "seed:99");
  EXPECT_EQ(back.strategy_options, "{}");
  std::vector<io::CheckpointTensor> r{{"/model/x", torch::zeros({5, 2})},
                                      {"/rng/default", torch::zeros({1, 40}, torch::kByte)},
                                      {"/model/i", torch::zeros({4}, torch::kLong)}};
  io::load_checkpoint_tensors(file, r);
  for (size_t i = 0; i < t.size(); ++i) EXPECT_TRUE(torch::equal(r[i].tensor, t[i].tensor)) << i;
  const auto list = io::list_checkpoint_tensors(file);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].path, "/model/i");
  EXPECT_EQ(list[0].dtype, "int64");
  EXPECT_EQ(list[2].path, "/rng/default");
  EXPECT_EQ(list[2].dtype, "uint8");
  EXPECT_EQ(list[2].shape, (std::vector<int64_t>{1, 40}));
}

TEST(CheckpointFormat, ChecksumDependsOnEveryByteAndLength) {
  auto a = torch::arange(37, torch::kFloat);
  const auto h = io::tensor_checksum(a);
  for (int64_t i : {0, 8, 31, 36}) {
    auto b = a.clone();
    b[i] = b[i] + 1;
    EXPECT_NE(io::tensor_checksum(b), h) << i;
  }
  EXPECT_NE(io::tensor_checksum(a.narrow(0, 0, 36)), h);
  EXPECT_EQ(io::tensor_checksum(a.clone()), h);
  // Fixed value, computed with the Python definition in docs/checkpoint-format.md: bytes 0..36
  // (four 8-byte words in the lanes, five tail bytes).
  EXPECT_EQ(io::tensor_checksum(torch::arange(37, torch::kByte)), 0x466b2865c5af6524ULL);
}

TEST(CheckpointFormat, LatestAndKeepLast) {
  const auto dir = temp_dir("ckpt_keep");
  for (int64_t s : {1, 2, 3, 4}) save_sample(dir, s, 2);
  EXPECT_FALSE(fs::exists(dir + "/step-00000001.h5"));
  EXPECT_FALSE(fs::exists(dir + "/step-00000002.h5"));
  EXPECT_TRUE(fs::exists(dir + "/step-00000003.h5"));
  EXPECT_TRUE(fs::exists(dir + "/step-00000004.h5"));
  EXPECT_EQ(read_all(dir + "/latest"), "step-00000004.h5\n");
  // A write of this run interrupted earlier leaves its temporary: the next save removes it and
  // `latest` never names it. Another run's temporary (it may be writing right now) and a name
  // of the older scheme stay.
  const std::string mine = dir + "/step-00000005.h5.anon-00112233aabbccdd.tmp";
  const std::string theirs = dir + "/step-00000005.h5.0badc0ffee-00112233aabbccdd.tmp";
  write_file(mine, "partial");
  write_file(theirs, "in progress");
  write_file(dir + "/step-00000005.h5.tmp", "old scheme");
  save_sample(dir, 6, 2);
  EXPECT_FALSE(fs::exists(mine));
  EXPECT_TRUE(fs::exists(theirs));
  EXPECT_TRUE(fs::exists(dir + "/step-00000005.h5.tmp"));
  EXPECT_EQ(io::resolve_checkpoint(dir), dir + "/step-00000006.h5");
}

TEST(CheckpointFormat, PruningDeletesOnlyThisRunsFiles) {
  const auto dir = temp_dir("ckpt_prune_runs");
  auto save_as = [&](const std::string& run, int64_t step) {
    auto info = test_info(step);
    info.run_id = run;
    std::vector<io::CheckpointTensor> t{{"/model/x", torch::ones({4})}};
    return io::save_checkpoint(dir, info, t, 1);
  };
  save_as("aaaa", 1);
  save_as("bbbb", 2);  // another run's file in the directory
  save_as("aaaa", 3);
  save_as("aaaa", 4);
  EXPECT_FALSE(fs::exists(dir + "/step-00000001.h5"));
  EXPECT_TRUE(fs::exists(dir + "/step-00000002.h5"));  // not this run's: never pruned
  EXPECT_FALSE(fs::exists(dir + "/step-00000003.h5"));
  EXPECT_EQ(io::read_run_id(dir + "/step-00000002.h5"), "bbbb");
  EXPECT_EQ(io::read_run_id(io::resolve_checkpoint(dir)), "aaaa");
}

TEST(CheckpointFormat, StepFilesSortNumericallyAtAnyWidth) {
  const auto dir = temp_dir("ckpt_widths");
  for (int64_t s : {99999999, 100000000, 7, 1000000001}) save_sample(dir, s, 0);
  write_file(dir + "/step-12x.h5", "not a step file");
  fs::create_symlink(dir + "/step-00000007.h5", dir + "/step-00000008.h5");  // not a plain file
  std::vector<int64_t> steps;
  for (const auto& f : io::list_step_files(dir)) steps.push_back(f.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{7, 99999999, 100000000, 1000000001}));
  save_sample(dir, 1000000002, 2);  // keeps the two numerically newest, whatever their width
  steps.clear();
  for (const auto& f : io::list_step_files(dir)) steps.push_back(f.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{1000000001, 1000000002}));
}

TEST(CheckpointFormat, TemporaryNamesAreUniqueAndNeverFollowSymlinks) {
  const auto dir = temp_dir("ckpt_tmp_names");
  save_sample(dir, 1);
  const std::string victim = dir + "/../victim_tmp_names";
  write_file(victim, "precious");
  fs::create_symlink(victim, dir + "/latest.tmp");
  fs::create_symlink(victim, dir + "/step-00000002.h5.tmp");
  save_sample(dir, 2);
  EXPECT_EQ(read_all(victim), "precious");
  EXPECT_EQ(io::resolve_checkpoint(dir), dir + "/step-00000002.h5");
}

TEST(CheckpointErrors, TruncatedFile) {
  const auto dir = temp_dir("ckpt_truncated");
  const auto file = save_sample(dir, 1);
  fs::resize_file(file, fs::file_size(file) - 600);
  expect_user_error(
      [&] {
        std::vector<io::CheckpointTensor> t{{"/model/marker", torch::zeros({256})}};
        io::load_checkpoint_tensors(file, t);
      },
      {file});
}

TEST(CheckpointErrors, CorruptedBytesFailTheChecksumNamingTheTensor) {
  const auto dir = temp_dir("ckpt_corrupt");
  const auto file = save_sample(dir, 1);
  auto bytes = read_all(file);
  const float v = 1234.5f;
  std::string pattern(reinterpret_cast<const char*>(&v), 4);
  std::string run;
  for (int i = 0; i < 16; ++i) run += pattern;
  const auto pos = bytes.find(run);
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 21] ^= 0x01;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  expect_user_error(
      [&] {
        std::vector<io::CheckpointTensor> t{{"/model/marker", torch::zeros({256})}};
        io::load_checkpoint_tensors(file, t);
      },
      {file, "/model/marker", "checksum"});
  // Other tensors still load.
  std::vector<io::CheckpointTensor> ok{{"/model/a.weight", torch::zeros({3, 4})}};
  EXPECT_NO_THROW(io::load_checkpoint_tensors(file, ok));
}

TEST(CheckpointErrors, MissingTensorWrongShapeWrongDtype) {
  const auto dir = temp_dir("ckpt_mismatch");
  const auto file = save_sample(dir, 1);
  expect_user_error(
      [&] {
        std::vector<io::CheckpointTensor> t{{"/model/b.weight", torch::zeros({3, 4})}};
        io::load_checkpoint_tensors(file, t);
      },
      {file, "/model/b.weight", "missing"});
  expect_user_error(
      [&] {
        std::vector<io::CheckpointTensor> t{{"/lora/x/y", torch::zeros({3, 4})}};
        io::load_checkpoint_tensors(file, t);
      },
      {file, "/lora/x/y", "missing"});
  expect_user_error(
      [&] {
        std::vector<io::CheckpointTensor> t{{"/model/a.weight", torch::zeros({4, 3})}};
        io::load_checkpoint_tensors(file, t);
      },
      {file, "/model/a.weight", "shape [3, 4]", "expected [4, 3]"});
  expect_user_error(
      [&] {
        std::vector<io::CheckpointTensor> t{{"/optimizer/a.weight/exp_avg", torch::zeros({3, 4})}};
        io::load_checkpoint_tensors(file, t);
      },
      {file, "/optimizer/a.weight/exp_avg", "float64", "expected float32"});
  expect_user_error([&] { io::resolve_checkpoint(dir + "/nothing"); }, {dir + "/nothing"});
  expect_user_error([&] { io::read_checkpoint_info(dir + "/latest"); }, {dir + "/latest"});
}

TEST(CheckpointErrors, OtherModelStrategyOrTokenizer) {
  auto saved = test_info(1);
  saved.model_config = core::ModelConfig{}.to_json();
  auto expected = saved;
  EXPECT_NO_THROW(io::require_compatible("f.h5", saved, expected));
  auto other_model = core::ModelConfig{};
  other_model.hidden_size *= 2;
  expected.model_config = other_model.to_json();
  expect_user_error([&] { io::require_compatible("f.h5", saved, expected); },
                    {"f.h5", "model config differs"});
  expected = saved;
  expected.strategy = "lora";
  expect_user_error([&] { io::require_compatible("f.h5", saved, expected); },
                    {"f.h5", "strategy 'sft'", "'lora'"});
  expected = saved;
  expected.strategy_options = "{\"rank\":\"8\"}";
  expect_user_error([&] { io::require_compatible("f.h5", saved, expected); },
                    {"f.h5", "strategy options differ"});
  expected = saved;
  expected.tokenizer = "bpe:abc";
  expect_user_error([&] { io::require_compatible("f.h5", saved, expected); },
                    {"f.h5", "tokenizer differs"});
}

// ---- the trainer ------------------------------------------------------------------------------

TEST(CheckpointTrainer, ResumeIsBitwiseWithDropout) {
  const auto dir = temp_dir("ckpt_trainer_bitwise");
  auto grid = local_grid();
  auto c = tiny_config(dir + "/out");
  c.model.dropout = 0.1;
  c.train.weight_decay = 0.01;
  c.checkpoint.dir = dir + "/ckpt";
  const auto run = stop_and_save(c, grid, 8, 5);
  EXPECT_EQ(io::read_checkpoint_info(run.file).step, 5);
  EXPECT_EQ(io::read_checkpoint_info(run.file).consumed_samples, 5 * c.train.global_batch);
  c.checkpoint.resume = "auto";
  expect_resumed_bitwise(c, grid, run);
}

TEST(CheckpointTrainer, ResumeAutoWithoutCheckpointStartsFresh) {
  const auto dir = temp_dir("ckpt_trainer_auto_fresh");
  auto grid = local_grid();
  auto c = tiny_config(dir + "/out");
  c.checkpoint.resume = "auto";
  launch::Trainer t(c, grid);
  EXPECT_EQ(t.steps_done(), 0);
  c.checkpoint.resume = dir + "/missing";
  expect_user_error([&] { launch::Trainer bad(c, grid); }, {dir + "/missing"});
}

TEST(CheckpointTrainer, MismatchedResumeNamesFileAndOverwritesNothing) {
  const auto dir = temp_dir("ckpt_trainer_mismatch");
  auto grid = local_grid();
  auto c = tiny_config(dir + "/out");
  c.checkpoint.dir = dir + "/ckpt";
  std::string file;
  {
    launch::Trainer t(c, grid);
    t.step();
    file = t.save();
  }
  const auto before = read_all(file);
  auto other = c;
  other.model.hidden_size = 64;
  other.checkpoint.resume = "auto";
  expect_user_error([&] { launch::Trainer t(other, grid); }, {file, "model config differs"});
  other = c;
  // Another seed makes other synthetic data: refused (the sampler position would index other
  // examples) unless allowed; the self-contained sft file needs no base model.
  other.train.seed = 7;
  other.checkpoint.resume = "auto";
  other.train.global_batch = 4;  // the sampler position must fit the global batch
  other.train.micro_batch = 4;
  expect_user_error([&] { launch::Trainer t(other, grid); },
                    {file, "the training data differ", "allow_data_change"});
  other.checkpoint.allow_data_change = true;
  EXPECT_NO_THROW(launch::Trainer t(other, grid));
  EXPECT_EQ(read_all(file), before);
  EXPECT_EQ(io::resolve_checkpoint(dir + "/ckpt"), file);
}

TEST(CheckpointTrainer, StopSignalCheckpointsAndReturns) {
  const auto dir = temp_dir("ckpt_trainer_signal");
  auto grid = local_grid();
  auto c = tiny_config(dir + "/out");
  c.train.steps = 50;
  c.checkpoint.dir = dir + "/ckpt";
  launch::install_stop_signals();
  launch::TestHooks hooks;
  // Arrives while step 2 is being prepared: the step boundary stops training after step 1. Sent
  // to the process, as launchers do; the watcher thread records it (launch/signals.h).
  hooks.before_step = [](int64_t step) {
    if (step != 2) return;
    ::kill(::getpid(), SIGUSR1);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!launch::stop_requested() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  launch::Trainer t(c, grid, hooks);
  const auto losses = t.train();
  EXPECT_EQ(t.stopped_by_signal(), SIGUSR1);
  launch::clear_stop_request();
  EXPECT_EQ(losses.size(), 1u);
  EXPECT_EQ(t.steps_done(), 1);
  EXPECT_EQ(io::read_checkpoint_info(io::resolve_checkpoint(dir + "/ckpt")).step, 1);
}

// ---- strategy-aware contents ------------------------------------------------------------------

namespace {
std::vector<std::string> model_datasets(const std::string& file) {
  std::vector<std::string> out;
  for (const auto& e : io::list_checkpoint_tensors(file)) {
    if (e.path.rfind("/model/", 0) == 0) out.push_back(e.path.substr(7));
  }
  return out;
}
}  // namespace

TEST(CheckpointStrategies, LoraHoldsOnlyAdaptersOnTheSeededBaseAndResumesBitwise) {
  const auto dir = temp_dir("ckpt_lora");
  auto grid = local_grid();
  auto c = tiny_config(dir + "/out");
  c.strategy = "lora";  // default lora dropout 0.05: the RNG streams matter
  c.checkpoint.dir = dir + "/ckpt";
  std::vector<std::string> trainable;
  double eval_at_save = 0;
  const auto run = stop_and_save(c, grid, 6, 3, [&](launch::Trainer& b) {
    eval_at_save = b.evaluate().loss;
    for (const auto& p : b.strategy().trainable_parameters(b.model())) trainable.push_back(p.name);
  });
  const std::string& file = run.file;
  // Only the trainable (adapter) parameters, and the base is the seeded initialisation.
  auto stored = model_datasets(file);
  std::sort(stored.begin(), stored.end());
  std::sort(trainable.begin(), trainable.end());
  EXPECT_EQ(stored, trainable);
  EXPECT_FALSE(trainable.empty());
  EXPECT_EQ(std::count(stored.begin(), stored.end(), "model.embed_tokens.weight"), 0);
  EXPECT_EQ(io::read_checkpoint_info(file).base_model, "seed:" + std::to_string(c.train.seed));
  EXPECT_EQ(io::read_checkpoint_info(file).strategy, "lora");
  // Resume: bitwise.
  expect_resumed_bitwise(c, grid, run);
  auto r = c;
  r.checkpoint.resume = file;
  // As [checkpoint] init_from (eval / generate): seeded base + the stored adapters = the same model.
  auto e = c;
  e.checkpoint.init_from = file;
  {
    launch::Trainer t(e, grid);
    EXPECT_EQ(t.evaluate().loss, eval_at_save);
  }
  // Another seed builds another base: refused, naming the file.
  e.train.seed = c.train.seed + 1;
  expect_user_error([&] { launch::Trainer t(e, grid); }, {file, "seed"});
  // Another strategy: refused.
  r.strategy = "sft";
  expect_user_error([&] { launch::Trainer t(r, grid); }, {file, "strategy 'lora'", "'sft'"});
}

TEST(CheckpointStrategies, FreezeRecordsItsInitFromBaseAndRefusesAnotherBase) {
  const auto dir = temp_dir("ckpt_freeze");
  auto grid = local_grid();
  auto base = tiny_config(dir + "/base");
  base.checkpoint.dir = dir + "/base_ckpt";
  std::string base_file, other_base;
  {
    launch::Trainer t(base, grid);
    t.step();
    base_file = t.save();
    t.step();
    other_base = t.save();
  }
  auto c = tiny_config(dir + "/ft");
  c.strategy = "freeze";
  c.strategy_options = {{"trainable_layers", "1"}};
  c.checkpoint.dir = dir + "/ft_ckpt";
  c.checkpoint.init_from = base_file;
  const auto run = stop_and_save(c, grid, 4, 2);
  const std::string& file = run.file;
  const auto info = io::read_checkpoint_info(file);
  EXPECT_EQ(info.base_model.rfind(fs::absolute(base_file).lexically_normal().string() + " digest:", 0),
            0u)
      << info.base_model;
  const auto stored = model_datasets(file);
  EXPECT_EQ(std::count(stored.begin(), stored.end(), "model.layers.0.self_attn.q_proj.weight"), 0);
  EXPECT_EQ(std::count(stored.begin(), stored.end(), "model.layers.1.self_attn.q_proj.weight"), 1);
  expect_resumed_bitwise(c, grid, run);
  auto r = c;
  r.checkpoint.resume = file;
  r.checkpoint.init_from = other_base;
  expect_user_error([&] { launch::Trainer t(r, grid); }, {file, "base model differs"});
}
