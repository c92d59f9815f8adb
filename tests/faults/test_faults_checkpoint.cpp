// Checkpoint and checkpoint-directory fault cases (docs/reliability-checkpoints.md). Each case
// runs the real executable the way a user would and checks, through tests/faults/fault_case.h, the
// exit code, the one error line and its text, that no trace or crash shows, a loose time bound,
// and that every pre-existing file of the checkpoint directory is byte-identical afterwards.
// Hostile files are made from a real checkpoint with the HDF5 C API (checkpoint_harness.h).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "checkpoint_harness.h"
#include "io/checkpoint.h"

using namespace shardtune;
using namespace shardtune::faults;

namespace {

// <base>/ckpt/{step-00000001.h5, step-00000002.h5, latest} of a 2-step run, written once per
// build of shardtune and shared by the test processes (fault_case.h built_once).
const std::string& base_dir() {
  static const std::string dir = built_once("ckpt_base", [](const std::string& d) {
    write_file(d + "/c.ini", tiny_ini(d));
    FaultCase c;
    c.args = {"train", "--config", d + "/c.ini"};
    c.expect_code = 0;
    const Outcome o = run_case(c);
    if (o.code != 0) throw std::runtime_error("base run failed: " + o.err);
    return true;
  });
  return dir;
}

// A case folder holding a copy of the base checkpoints and a config pointing at them.
struct Case {
  std::string dir, ini, ckpt, step1, step2;
};

Case fresh_case(const std::string& name, int steps = 4) {
  Case c;
  c.dir = scratch_dir("ckpt_" + name);
  fs::copy(base_dir() + "/ckpt", c.dir + "/ckpt", fs::copy_options::recursive);
  c.ini = c.dir + "/c.ini";
  write_file(c.ini, tiny_ini(c.dir, steps));
  c.ckpt = c.dir + "/ckpt";
  c.step1 = c.ckpt + "/step-00000001.h5";
  c.step2 = c.ckpt + "/step-00000002.h5";
  return c;
}

// `shardtune ckpt inspect FILE` must fail with one line containing `text`, exit 2.
void expect_inspect_fails(const Case& k, const std::string& file, const std::string& text) {
  FaultCase c;
  c.args = {"ckpt", "inspect", file};
  c.expect_error = text;
  c.max_seconds = 10;
  c.watch = {k.ckpt};
  expect_fault(c);
}

// `shardtune train --resume auto` on the case folder must fail with one line containing `text`.
void expect_resume_fails(const Case& k, const std::string& text,
                         std::vector<std::string> extra = {}) {
  FaultCase c;
  c.args = {"train", "--config", k.ini, "--resume", "auto"};
  c.args.insert(c.args.end(), extra.begin(), extra.end());
  c.expect_error = text;
  c.max_seconds = 20;
  c.watch = {k.ckpt};
  expect_fault(c);
}

Outcome train_ok(const Case& k, std::vector<std::string> extra, std::vector<std::string> allowed = {}) {
  FaultCase c;
  c.args = {"train", "--config", k.ini};
  c.args.insert(c.args.end(), extra.begin(), extra.end());
  c.expect_code = 0;
  c.max_seconds = 60;
  c.allowed_stderr = allowed;
  return expect_fault(c);
}

}  // namespace

// ---- hostile attributes ------------------------------------------------------------------------

TEST(CheckpointFaults, NegativeStepResealed) {
  auto k = fresh_case("neg_step");
  set_ints(k.step2, "/", "step", {-1});
  reseal(k.step2);
  expect_inspect_fails(k, k.step2, "step=-1 is out of range");
}

TEST(CheckpointFaults, NegativeConsumedSamplesOnResume) {
  auto k = fresh_case("neg_consumed");
  set_ints(k.step2, "/", "consumed_samples", {-4});
  reseal(k.step2);
  expect_resume_fails(k, "consumed_samples=-4 is out of range");
}

TEST(CheckpointFaults, HugeOptimizerStep) {
  auto k = fresh_case("huge_opt_step");
  set_ints(k.step2, "/", "optimizer_step", {int64_t{1} << 62});
  reseal(k.step2);
  expect_resume_fails(k, "optimizer_step=4611686018427387904 is out of range");
}

TEST(CheckpointFaults, StepAs64ElementArray) {
  auto k = fresh_case("step_array");
  set_ints(k.step2, "/", "step", std::vector<int64_t>(64, 7), false);
  expect_inspect_fails(k, k.step2, "attribute 'step' must hold one value, it holds 64");
}

TEST(CheckpointFaults, FormatVersionAsArray) {
  auto k = fresh_case("version_array");
  set_ints(k.step2, "/", "format_version", std::vector<int64_t>(8, 3), false);
  expect_inspect_fails(k, k.step2, "attribute 'format_version' must hold one value");
}

TEST(CheckpointFaults, UnknownFormatVersion) {
  auto k = fresh_case("version_99");
  set_ints(k.step2, "/", "format_version", {99});
  expect_inspect_fails(k, k.step2, "format version 99 is not supported");
}

TEST(CheckpointFaults, StepAsString) {
  auto k = fresh_case("step_string");
  set_string(k.step2, "/", "step", "2");
  expect_inspect_fails(k, k.step2, "attribute 'step' is not an integer");
}

TEST(CheckpointFaults, StrategyAsInteger) {
  auto k = fresh_case("strategy_int");
  set_ints(k.step2, "/", "strategy", {1});
  expect_inspect_fails(k, k.step2, "attribute 'strategy' is not a string");
}

TEST(CheckpointFaults, VariableLengthString) {
  auto k = fresh_case("vlen_string");
  set_string(k.step2, "/", "tokenizer", "byte-v1", true);
  expect_inspect_fails(k, k.step2, "attribute 'tokenizer' is a variable-length string");
}

TEST(CheckpointFaults, LongStrategyStringResealedIsReadSafelyAndRefused) {
  // 5000 bytes: once overflowed a one-element buffer; now read whole and compared.
  auto k = fresh_case("long_strategy");
  set_string(k.step2, "/", "strategy", std::string(5000, 's'));
  reseal(k.step2);
  expect_resume_fails(k, "saved by strategy 'sss");
}

TEST(CheckpointFaults, WideIntegerType) {
  // A 16-byte integer cannot be read into 8 bytes.
  auto k = fresh_case("wide_int");
  {
    H5File f(k.step2);
    H5Adelete(f.id(), "world");
    const hid_t type = H5Tcopy(H5T_STD_I64LE);
    H5Tset_size(type, 16);
    H5Tset_precision(type, 128);
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(f.id(), "world", type, space, H5P_DEFAULT, H5P_DEFAULT);
    const unsigned char zeros[16] = {1};
    H5Awrite(a, type, zeros);
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
  }
  expect_inspect_fails(k, k.step2, "attribute 'world' has 16-byte elements");
}

TEST(CheckpointFaults, ZeroTensorParallelResealed) {
  auto k = fresh_case("tp_zero");
  set_ints(k.step2, "/", "tp", {0});
  reseal(k.step2);
  expect_inspect_fails(k, k.step2, "tp=0 is out of range");
}

TEST(CheckpointFaults, WorldNotTpTimesDpResealed) {
  auto k = fresh_case("world_mismatch");
  set_ints(k.step2, "/", "world", {3});
  reseal(k.step2);
  expect_inspect_fails(k, k.step2, "world=3 is not tp x dp");
}

TEST(CheckpointFaults, ZeroStageSevenResealed) {
  auto k = fresh_case("zero_7");
  set_ints(k.step2, "/", "zero", {7});
  reseal(k.step2);
  expect_inspect_fails(k, k.step2, "zero=7 is neither 0 nor 1");
}

TEST(CheckpointFaults, RunIdWithNewlineCannotForgeASecondLine) {
  auto k = fresh_case("run_id_newline");
  set_string(k.step2, "/", "run_id", "abc\nshardtune: error: forged");
  reseal(k.step2);
  // check_outcome requires exactly one error line: the newline is shown escaped.
  expect_inspect_fails(k, k.step2, "run_id 'abc\\x0ashardtune: error: forged' is malformed");
}

// ---- piece attributes and checksums ------------------------------------------------------------

const char* kEmbed = "/model/model.embed_tokens.weight";

TEST(CheckpointFaults, HugeShardChunkResealed) {
  auto k = fresh_case("huge_chunk");
  set_ints(k.step2, kEmbed, "shard_dim", {0});
  set_ints(k.step2, kEmbed, "shard_chunk", {int64_t{1} << 40});
  reseal(k.step2);
  expect_resume_fails(k, "has an invalid sharding description");
}

TEST(CheckpointFaults, ZeroShardChunkResealed) {
  auto k = fresh_case("zero_chunk");
  set_ints(k.step2, kEmbed, "shard_dim", {0});
  set_ints(k.step2, kEmbed, "shard_chunk", {0});
  reseal(k.step2);
  expect_inspect_fails(k, k.step2, "shard_chunk=0");
}

TEST(CheckpointFaults, NegativeShardPartsResealed) {
  auto k = fresh_case("neg_parts");
  set_ints(k.step2, kEmbed, "shard_parts", {-2});
  reseal(k.step2);
  expect_inspect_fails(k, k.step2, "shard_parts=-2");
}

TEST(CheckpointFaults, ShardDimBeyondRankResealed) {
  auto k = fresh_case("dim_beyond");
  set_ints(k.step2, kEmbed, "shard_dim", {5});
  reseal(k.step2);
  expect_inspect_fails(k, k.step2, "shard_dim=5");
}

TEST(CheckpointFaults, DeletedPieceChecksumsIsAnError) {
  auto k = fresh_case("no_checksums");
  delete_attr(k.step2, kEmbed, "checksums");
  reseal(k.step2);
  expect_resume_fails(k, "attribute 'checksums' is missing");
}

TEST(CheckpointFaults, WrongChecksumCountResealed) {
  auto k = fresh_case("checksum_count");
  set_ints(k.step2, kEmbed, "checksums", {1, 2, 3}, false, H5T_STD_U64LE);
  reseal(k.step2);
  expect_inspect_fails(k, k.step2, "has 3 checksums for 1 pieces");
}

TEST(CheckpointFaults, DeletedMetadataChecksumIsAnError) {
  auto k = fresh_case("no_meta_sum");
  delete_attr(k.step2, "/", io::kMetadataChecksum);
  expect_resume_fails(k, "attribute 'metadata_checksum' is missing");
}

TEST(CheckpointFaults, EditedStepWithoutResealFailsTheMetadataChecksum) {
  auto k = fresh_case("edited_step");
  set_ints(k.step2, "/", "step", {1});
  expect_resume_fails(k, "metadata checksum mismatch");
}

TEST(CheckpointFaults, EditedPieceChecksumFailsTheMetadataChecksum) {
  auto k = fresh_case("edited_piece_sum");
  set_ints(k.step2, kEmbed, "checksums", {12345}, false, H5T_STD_U64LE);
  expect_inspect_fails(k, k.step2, "metadata checksum mismatch");
}

TEST(CheckpointFaults, FlippedDataByteFailsThePieceChecksum) {
  auto k = fresh_case("flipped_byte");
  {
    // Overwrite the embedding's data through HDF5 (the layout stays valid).
    H5File f(k.step2);
    const hid_t ds = H5Dopen2(f.id(), kEmbed, H5P_DEFAULT);
    std::vector<float> data(260 * 16);
    H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data());
    data[100] += 1.0f;
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data());
    H5Dclose(ds);
  }
  expect_resume_fails(k, std::string("tensor ") + kEmbed + " fails its checksum");
}

TEST(CheckpointFaults, SoftLinkDatasetIsRefused) {
  auto k = fresh_case("soft_link");
  {
    H5File f(k.step2);
    H5Lcreate_soft("/model/model.norm.weight", f.id(), "/model/alias", H5P_DEFAULT, H5P_DEFAULT);
  }
  reseal(k.step2);
  expect_inspect_fails(k, k.step2, "/model/alias is a soft or external link");
}

TEST(CheckpointFaults, ExternalLinkIsRefused) {
  auto k = fresh_case("external_link");
  {
    H5File f(k.step2);
    H5Lcreate_external(k.step1.c_str(), "/model/model.norm.weight", f.id(), "/model/ext",
                       H5P_DEFAULT, H5P_DEFAULT);
  }
  expect_inspect_fails(k, k.step2, "/model/ext is a soft or external link");
}

TEST(CheckpointFaults, DatasetOfAnotherDtypeResealed) {
  auto k = fresh_case("dtype");
  {
    H5File f(k.step2);
    const std::string path = "/model/model.norm.weight";
    H5Ldelete(f.id(), path.c_str(), H5P_DEFAULT);
    const hsize_t n = 16;
    const hid_t space = H5Screate_simple(1, &n, nullptr);
    const hid_t ds = H5Dcreate2(f.id(), path.c_str(), H5T_STD_I32LE, space, H5P_DEFAULT,
                                H5P_DEFAULT, H5P_DEFAULT);
    std::vector<int32_t> zeros(16, 0);
    H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros.data());
    H5Dclose(ds);
    H5Sclose(space);
  }
  set_ints(k.step2, "/model/model.norm.weight", "shard_dim", {-1});
  set_ints(k.step2, "/model/model.norm.weight", "shard_parts", {1});
  set_ints(k.step2, "/model/model.norm.weight", "shard_chunk", {0});
  set_ints(k.step2, "/model/model.norm.weight", "checksums", {1}, false, H5T_STD_U64LE);
  reseal(k.step2);
  expect_resume_fails(k, "has dtype int32, expected float32");
}

TEST(CheckpointFaults, TruncatedFile) {
  auto k = fresh_case("truncated");
  fs::resize_file(k.step2, fs::file_size(k.step2) / 2);
  expect_resume_fails(k, "not a readable HDF5 checkpoint");
}

TEST(CheckpointFaults, RandomBytes) {
  auto k = fresh_case("random_bytes");
  std::string junk(4096, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 2654435761u) >> 13);
  write_file(k.ckpt + "/junk.h5", junk);
  expect_inspect_fails(k, k.ckpt + "/junk.h5", "not a readable HDF5 checkpoint");
}

// ---- base-model references ---------------------------------------------------------------------

TEST(CheckpointFaults, CheckpointNamingItselfAsBaseIsRefused) {
  auto k = fresh_case("self_base");
  const std::string digest = io::checkpoint_digest(k.step2);
  set_string(k.step2, "/", "base_model", io::file_base(k.step2, digest));
  reseal(k.step2);
  FaultCase c;
  c.args = {"eval", "--config", k.ini, "--checkpoint.init_from=" + k.step2};
  c.expect_error = "loops back to";
  c.max_seconds = 20;
  c.watch = {k.ckpt};
  expect_fault(c);
}

TEST(CheckpointFaults, BaseCycleOfTwoIsRefused) {
  auto k = fresh_case("base_cycle");
  // step 1 names step 2 as its base and step 2 names step 1 (each sealed before the other reads
  // its digest; step 1 then holds step 2's digest from before the edit: the loop is found first).
  set_string(k.step1, "/", "base_model", io::file_base(k.step2, io::checkpoint_digest(k.step2)));
  reseal(k.step1);
  set_string(k.step2, "/", "base_model", io::file_base(k.step1, io::checkpoint_digest(k.step1)));
  reseal(k.step2);
  FaultCase c;
  c.args = {"eval", "--config", k.ini, "--checkpoint.init_from=" + k.step2};
  c.expect_error = "loops back to";
  c.max_seconds = 20;
  c.watch = {k.ckpt};
  expect_fault(c);
}

// ---- paths, `latest`, special files -----------------------------------------------------------

TEST(CheckpointFaults, LatestNamingParentDirectory) {
  auto k = fresh_case("latest_dotdot");
  fs::copy_file(k.step2, k.dir + "/outside.h5");
  write_file(k.ckpt + "/latest", "../outside.h5\n");
  expect_resume_fails(k, "not a file name inside the directory");
}

TEST(CheckpointFaults, LatestWithAbsolutePath) {
  auto k = fresh_case("latest_abs");
  write_file(k.ckpt + "/latest", k.step2 + "\n");
  expect_resume_fails(k, "not a file name inside the directory");
}

TEST(CheckpointFaults, LatestIsASymlink) {
  auto k = fresh_case("latest_symlink");
  write_file(k.dir + "/pointer", "step-00000002.h5\n");
  fs::remove(k.ckpt + "/latest");
  fs::create_symlink(k.dir + "/pointer", k.ckpt + "/latest");
  expect_resume_fails(k, "is a symbolic link");
}

TEST(CheckpointFaults, LatestIsAFifoDoesNotHang) {
  auto k = fresh_case("latest_fifo");
  fs::remove(k.ckpt + "/latest");
  ASSERT_EQ(mkfifo((k.ckpt + "/latest").c_str(), 0644), 0);
  expect_resume_fails(k, "is not a regular file");
}

TEST(CheckpointFaults, LatestNamesMissingFile) {
  auto k = fresh_case("latest_missing");
  write_file(k.ckpt + "/latest", "step-00000009.h5\n");
  expect_resume_fails(k, "names step-00000009.h5, which is missing");
}

TEST(CheckpointFaults, LatestNamesASymlinkedStepFile) {
  auto k = fresh_case("latest_names_symlink");
  fs::create_symlink(k.step2, k.ckpt + "/step-00000003.h5");
  write_file(k.ckpt + "/latest", "step-00000003.h5\n");
  expect_resume_fails(k, "which is not a plain file");
}

TEST(CheckpointFaults, LatestTooLarge) {
  auto k = fresh_case("latest_large");
  write_file(k.ckpt + "/latest", std::string(10000, 'a'));
  expect_resume_fails(k, "larger than 4 KiB");
}

TEST(CheckpointFaults, LatestEmpty) {
  auto k = fresh_case("latest_empty");
  write_file(k.ckpt + "/latest", " \n\t\n");
  expect_resume_fails(k, "empty checkpoint pointer");
}

TEST(CheckpointFaults, LatestWithTrailingWhitespaceResumes) {
  auto k = fresh_case("latest_ws");
  write_file(k.ckpt + "/latest", "step-00000002.h5  \r\n\n");
  const Outcome o = train_ok(k, {"--resume", "auto"});
  EXPECT_NE(o.out.find("resumed from"), std::string::npos) << o.out << o.err;
  EXPECT_EQ(io::read_checkpoint_info(io::resolve_checkpoint(k.ckpt)).step, 4);
}

TEST(CheckpointFaults, InspectOnSymlinkLoopIsOneLine) {
  auto k = fresh_case("symlink_loop");
  fs::create_symlink(k.dir + "/loop_b", k.dir + "/loop_a");
  fs::create_symlink(k.dir + "/loop_a", k.dir + "/loop_b");
  expect_inspect_fails(k, k.dir + "/loop_a", "loop_a: cannot access");
}

TEST(CheckpointFaults, InspectOnFifoDoesNotHang) {
  auto k = fresh_case("inspect_fifo");
  ASSERT_EQ(mkfifo((k.dir + "/pipe.h5").c_str(), 0644), 0);
  expect_inspect_fails(k, k.dir + "/pipe.h5", "no such checkpoint file or directory");
}

// ---- a directory belongs to one run ------------------------------------------------------------

TEST(CheckpointFaults, FreshRunRefusesAnotherRunsDirectory) {
  auto k = fresh_case("other_run");
  FaultCase c;
  c.args = {"train", "--config", k.ini};
  c.expect_error = "holds checkpoints of another run";
  c.max_seconds = 20;
  c.watch = {k.ckpt};
  const Outcome o = expect_fault(c);
  EXPECT_NE(o.err.find("[checkpoint] overwrite = true"), std::string::npos) << o.err;
}

TEST(CheckpointFaults, OverwriteTakesTheDirectory) {
  auto k = fresh_case("overwrite", 3);
  const std::string old_id = io::read_run_id(k.step2);
  train_ok(k, {"--checkpoint.overwrite=true"}, {"of another run ([checkpoint] overwrite)"});
  const auto files = io::list_step_files(k.ckpt);
  ASSERT_EQ(files.size(), 3u);
  for (const auto& f : files) EXPECT_NE(io::read_run_id(k.ckpt + "/" + f.name), old_id) << f.name;
}

TEST(CheckpointFaults, ResumeAutoContinuesTheRunItFinds) {
  auto k = fresh_case("resume_same_run");
  const std::string id = io::read_run_id(k.step2);
  ASSERT_FALSE(id.empty());
  train_ok(k, {"--resume", "auto"});
  EXPECT_EQ(io::read_run_id(io::resolve_checkpoint(k.ckpt)), id);
  EXPECT_EQ(io::read_checkpoint_info(io::resolve_checkpoint(k.ckpt)).step, 4);
}

TEST(CheckpointFaults, ResumeRefusesWhenAnotherRunsFilesAreMixedIn) {
  auto k = fresh_case("mixed_runs");
  // A step file of another run copied in (same content, other run id).
  fs::copy_file(k.step1, k.ckpt + "/step-00000007.h5");
  set_string(k.ckpt + "/step-00000007.h5", "/", "run_id", "0000feed");
  reseal(k.ckpt + "/step-00000007.h5");
  expect_resume_fails(k, "holds checkpoints of another run (step-00000007.h5, run 0000feed");
}

TEST(CheckpointFaults, PlantedSymlinksAtTemporaryNamesAreNotFollowed) {
  auto k = fresh_case("planted", 3);
  const std::string victim = k.dir + "/victim.txt";
  write_file(victim, "precious\n");
  // The names the old code wrote through, and a guess at the new ones.
  fs::create_symlink(victim, k.ckpt + "/latest.tmp");
  fs::create_symlink(victim, k.ckpt + "/step-00000003.h5.tmp");
  FaultCase c;
  c.args = {"train", "--config", k.ini, "--resume", "auto"};
  c.expect_code = 0;
  c.max_seconds = 60;
  expect_fault(c);
  EXPECT_EQ(read_all(victim), "precious\n");
  EXPECT_TRUE(fs::is_symlink(k.ckpt + "/latest.tmp"));
  EXPECT_EQ(io::read_checkpoint_info(io::resolve_checkpoint(k.ckpt)).step, 3);
}

TEST(CheckpointFaults, ChangedDataIsRefusedUnlessAllowed) {
  auto k = fresh_case("changed_data");
  // 16 -> 18 synthetic samples: other training data, same model and strategy.
  FaultCase c;
  c.args = {"train", "--config", k.ini, "--resume", "auto", "--data.synthetic_samples=18"};
  c.expect_error = "the training data differ from the data it was trained on";
  c.max_seconds = 20;
  c.watch = {k.ckpt};
  const Outcome o = expect_fault(c);
  EXPECT_NE(o.err.find("allow_data_change = true"), std::string::npos) << o.err;
  const Outcome ok = train_ok(k, {"--resume", "auto", "--data.synthetic_samples=18",
                                  "--checkpoint.allow_data_change=true"},
                              {"training data differ"});
  EXPECT_NE(ok.out.find("resuming anyway"), std::string::npos) << ok.out;
}

TEST(CheckpointFaults, UnwritableCheckpointDirectoryFailsAtStartUp) {
  auto k = fresh_case("unwritable");
  FaultCase c;
  c.args = {"train", "--config", k.ini, "--checkpoint.dir=/proc/self/ckpt"};
  c.expect_error = "cannot create checkpoint directory";
  c.max_seconds = 20;
  c.watch = {k.ckpt};
  expect_fault(c);
}

// ---- ranks agree -------------------------------------------------------------------------------

TEST(CheckpointFaults, NodeLocalCheckpointDirectoryFailsInSeconds) {
  const std::string dir = scratch_dir("ckpt_node_local");
  fs::create_directories(dir + "/node0");
  fs::create_directories(dir + "/node1");
  write_file(dir + "/c.ini", tiny_ini("rel"));  // out_dir and checkpoint dir relative
  const Outcome o = run_two_dirs(dir + "/node0", dir + "/node1", {"train", "--config", dir + "/c.ini"});
  FaultCase c;
  c.expect_error = "does not see the checkpoint directory rank 0 writes";
  c.max_seconds = 30;
  check_outcome(c, o);
  EXPECT_TRUE(io::list_step_files(dir + "/node0/rel/ckpt").empty());
}

TEST(CheckpointFaults, RanksSeeingDifferentResumeFilesFail) {
  const std::string dir = scratch_dir("ckpt_rank_files");
  for (const char* node : {"node0", "node1"}) {
    fs::create_directories(dir + "/" + node + "/rel");
    fs::copy(base_dir() + "/ckpt", dir + "/" + node + "/rel/ckpt", fs::copy_options::recursive);
  }
  write_file(dir + "/c.ini", tiny_ini("rel", 4));
  // Rank 1's file of the same name holds other content (step 1's bytes).
  fs::copy_file(dir + "/node1/rel/ckpt/step-00000001.h5", dir + "/node1/rel/ckpt/step-00000002.h5",
                fs::copy_options::overwrite_existing);
  const auto before1b = snapshot(dir + "/node1");
  const Outcome o2 = run_two_dirs(dir + "/node0", dir + "/node1",
                                  {"train", "--config", dir + "/c.ini", "--resume",
                                   "rel/ckpt/step-00000002.h5"});
  FaultCase c;
  c.expect_error = "rank 1 sees other content than rank 0";
  c.max_seconds = 30;
  check_outcome(c, o2);
  EXPECT_EQ(changed_since(dir + "/node1", before1b), "");
}
