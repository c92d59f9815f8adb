// Fault cases: the command line, data files and the environment. One error line naming the file,
// field or variable, exit 2 (never "internal error"), and no pre-existing checkpoint harmed.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <fstream>

#include "fault_fixtures.h"

using namespace shardtune::faults;

namespace {

// A JSONL data set of `n` prompt/response records.
std::string jsonl(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    text += "{\"prompt\": \"question " + std::to_string(i) + "\", \"response\": \"answer " +
            std::to_string(i) + "\"}\n";
  }
  return text;
}

}  // namespace

// --- command line ---

TEST(FaultCli, UnknownCommand) {
  FaultCase c;
  c.args = {"frobnicate"};
  c.expect_error = "unknown command 'frobnicate'";
  // The usage follows the error line on stderr.
  c.allowed_stderr = {"usage:", "commands:", "  ", "Launch with", "environment:"};
  expect_fault(c);
}

TEST(FaultCli, ResumeWithoutValue) {
  const std::string dir = seeded_run("cli_resume_no_value");
  auto c = train_case(dir, {"--resume"});
  c.expect_error = "--resume needs a value";
  expect_fault(c);
}

TEST(FaultCli, EvalWithoutCheckpoint) {
  const std::string dir = seeded_run("cli_eval_no_ckpt");
  auto c = train_case(dir);
  c.args[0] = "eval";
  c.expect_error = "eval needs [checkpoint] init_from";
  expect_fault(c);
}

TEST(FaultCli, InspectSymlinkLoop) {
  const std::string dir = seeded_run("cli_inspect_loop");
  fs::create_symlink(dir + "/loop-b", dir + "/loop-a");
  fs::create_symlink(dir + "/loop-a", dir + "/loop-b");
  FaultCase c;
  c.args = {"ckpt", "inspect", dir + "/loop-a"};
  c.expect_error = "loop-a";
  c.watch = {dir + "/run"};
  expect_fault(c);
}

TEST(FaultCli, InspectNotACheckpoint) {
  const std::string dir = seeded_run("cli_inspect_text");
  write_file(dir + "/notes.h5", "these are not HDF5 bytes\n");
  FaultCase c;
  c.args = {"ckpt", "inspect", dir + "/notes.h5"};
  c.expect_error = "notes.h5";
  c.watch = {dir + "/run"};
  expect_fault(c);
}

// --- data ---

TEST(FaultData, FifoAsTrainFile) {
  const std::string dir = seeded_run("data_fifo");
  ASSERT_EQ(::mkfifo((dir + "/d.jsonl").c_str(), 0600), 0);
  auto c = train_case(dir, {"--data.source=jsonl", "--data.train_file=" + dir + "/d.jsonl"});
  c.expect_error = "d.jsonl: cannot open (not a regular file)";
  expect_fault(c);
}

TEST(FaultData, DirectoryAsTrainFile) {
  const std::string dir = seeded_run("data_dir");
  auto c = train_case(dir, {"--data.source=jsonl", "--data.train_file=" + dir + "/run"});
  c.expect_error = "cannot open (a directory)";
  expect_fault(c);
}

TEST(FaultData, MissingTrainFile) {
  const std::string dir = seeded_run("data_missing");
  auto c = train_case(dir, {"--data.source=jsonl", "--data.train_file=" + dir + "/none.jsonl"});
  c.expect_error = "none.jsonl: cannot open";
  expect_fault(c);
}

TEST(FaultData, PreprocessWithoutTokenizedDir) {
  // The run's INI names no tokenized_dir (an empty --data.tokenized_dir= is refused earlier, by
  // the option parser): preprocess says where its output should go, before reading anything.
  const std::string dir = seeded_run("data_preprocess_no_dir");
  write_file(dir + "/d.jsonl", jsonl(4));
  FaultCase c;
  c.args = {"preprocess", "--config", dir + "/c.ini", "--data.source=jsonl",
            "--data.train_file=" + dir + "/d.jsonl"};
  c.watch = {dir + "/run"};
  c.expect_error = "shardtune preprocess needs [data] tokenized_dir";
  expect_fault(c);
}

TEST(FaultData, EmptyTrainFile) {
  const std::string dir = seeded_run("data_empty");
  write_file(dir + "/d.jsonl", "\n\n");
  auto c = train_case(dir, {"--data.source=jsonl", "--data.train_file=" + dir + "/d.jsonl"});
  c.expect_error = "d.jsonl: no records";
  expect_fault(c);
}

TEST(FaultData, OverlongJsonlLine) {
  const std::string dir = seeded_run("data_long_line");
  {
    std::ofstream out(dir + "/d.jsonl", std::ios::binary);
    out << jsonl(2) << "{\"text\": \"";
    const std::string block(1 << 20, 'a');
    for (int i = 0; i < 65; ++i) out << block;  // 65 MiB without a newline (the cap is 64 MiB)
    out << "\"}\n";
  }
  auto c = train_case(dir, {"--data.source=jsonl", "--data.train_file=" + dir + "/d.jsonl"});
  c.expect_error = "d.jsonl:3: line is longer than the";
  expect_fault(c);
}

TEST(FaultData, MalformedJsonNamesTheLine) {
  const std::string dir = seeded_run("data_bad_json");
  write_file(dir + "/d.jsonl", jsonl(3) + "{\"prompt\": \"q\", \n");
  auto c = train_case(dir, {"--data.source=jsonl", "--data.train_file=" + dir + "/d.jsonl"});
  c.expect_error = "d.jsonl:4: invalid JSON";
  expect_fault(c);
}

TEST(FaultData, JsonNumberOutOfRangeIsAUserError) {
  const std::string dir = seeded_run("data_number_range");
  write_file(dir + "/d.jsonl", jsonl(2) + "{\"text\": \"x\", \"n\": 1e999}\n");
  auto c = train_case(dir, {"--data.source=jsonl", "--data.train_file=" + dir + "/d.jsonl"});
  c.expect_error = "d.jsonl:3: invalid JSON";
  expect_fault(c);
}

TEST(FaultData, NewlineInJsonCannotForgeALine) {
  const std::string dir = seeded_run("data_forged_line");
  write_file(dir + "/d.jsonl",
             "{\"messages\": [{\"role\": \"x\\nshardtune: error: forged\", \"content\": \"c\"}]}\n");
  auto c = train_case(dir, {"--data.source=jsonl", "--data.train_file=" + dir + "/d.jsonl"});
  c.expect_error = "d.jsonl:1:";
  const Outcome o = expect_fault(c);
  EXPECT_EQ(o.err.find("\nshardtune: error: forged"), std::string::npos) << o.err;
}

TEST(FaultData, EveryTargetTruncatedAway) {
  const std::string dir = seeded_run("data_truncated");
  // Prompts longer than seq_len: no answer token survives truncation.
  std::string text;
  for (int i = 0; i < 8; ++i) {
    text += "{\"prompt\": \"" + std::string(200, 'q') + "\", \"response\": \"a\"}\n";
  }
  write_file(dir + "/d.jsonl", text);
  auto c = train_case(dir, {"--data.source=jsonl", "--data.train_file=" + dir + "/d.jsonl"});
  c.expect_error = "none of the 8 training examples keeps a target token within [train] seq_len=32";
  expect_fault(c);
}

// --- environment ---

TEST(FaultEnv, BadThreadCount) {
  const std::string dir = seeded_run("env_threads");
  auto c = train_case(dir);
  c.env = {{"SHARDTUNE_THREADS", "many"}};
  c.expect_error = "SHARDTUNE_THREADS";
  expect_fault(c);
}

TEST(FaultEnv, OutDirUnderAFile) {
  const std::string dir = seeded_run("env_out_dir_file");
  write_file(dir + "/plain", "a file\n");
  auto c = train_case(dir, {"--train.out_dir=" + dir + "/plain/run",
                            "--checkpoint.dir=" + dir + "/ckpt"});
  c.expect_error = "[train] out_dir=" + dir + "/plain/run: cannot create the run directory";
  expect_fault(c);
}

TEST(FaultEnv, OutDirIsAFile) {
  const std::string dir = seeded_run("env_out_dir_is_file");
  write_file(dir + "/plain", "a file\n");
  auto c = train_case(dir, {"--train.out_dir=" + dir + "/plain", "--checkpoint.dir=" + dir + "/ckpt"});
  c.expect_error = "cannot create the run directory";
  c.watch.push_back(dir + "/plain");
  expect_fault(c);
}

TEST(FaultEnv, FullDiskWhileSaving) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs";
  const std::string dir = seeded_run("env_full_disk");
  const std::string mnt = dir + "/small";
  fs::create_directories(mnt);
  if (std::system(("mount -t tmpfs -o size=256k tmpfs " + mnt + " 2>/dev/null").c_str()) != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here";
  }
  // A pre-existing file on the small disk must survive; the checkpoint does not fit.
  write_file(mnt + "/keep.txt", "precious\n");
  // A run directory of its own: this run trains two steps (and logs them) before its first save.
  auto c = train_case(dir, {"--checkpoint.dir=" + mnt + "/ckpt", "--train.out_dir=" + dir + "/run2",
                            "--model.hidden_size=64", "--model.intermediate_size=128"});
  c.expect_code = 2;
  c.expect_error = "ckpt";
  c.watch.push_back(mnt);
  expect_fault(c);
  std::system(("umount " + mnt).c_str());
}
