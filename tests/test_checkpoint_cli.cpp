// The shardtune executable under mpiexec -np 2 (label mpi): SIGTERM to every rank or SIGUSR1 to one
// rank checkpoints and exits 0; SIGKILL of a rank in the middle of a checkpoint write leaves
// `latest` on the previous complete file and `--resume auto` continues; a resumed run's losses equal
// the uninterrupted run's bitwise; a corrupted checkpoint ends every rank with one error and
// changes nothing on disk.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <iterator>
#include <thread>

#include "cli_helpers.h"
#include "io/checkpoint.h"
#include "train_helpers.h"

using namespace shardtune;
using namespace shardtune::testing;
namespace fs = std::filesystem;

namespace {


std::string tiny_ini(const std::string& dir) {
  return "[model]\nvocab_size = 260\nhidden_size = 32\nnum_layers = 2\nnum_heads = 4\n"
         "intermediate_size = 64\nmax_position_embeddings = 64\n"
         "[train]\nsteps = 6\nglobal_batch = 4\nmicro_batch = 2\nseq_len = 32\nlog_every = 1\n"
         "out_dir = " + dir + "/run\n"
         "[data]\nsource = synthetic\nsynthetic_samples = 64\nmax_eval_samples = 8\n"
         "[checkpoint]\ndir = " + dir + "/ckpt\nkeep_last = 0\n";
}

// Starts `mpiexec -np 2 <env> <bin> train ...` in the background, output to dir/log.txt.
pid_t spawn(const std::string& dir, const std::string& env, const std::string& args,
            const std::string& bin = kShardtune) {
  const std::string cmd = "exec " + mpiexec() + " -np 2 " + env + " " + bin + " train " + args +
                          " >>" + dir + "/log.txt 2>&1";
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Exit code, or -1 after `seconds` (then the job is killed).
int wait_exit(pid_t pid, double seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > seconds) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

int run(const std::string& dir, const std::string& env, const std::string& args) {
  return wait_exit(spawn(dir, env, args), 300);
}

// The shardtune rank processes whose command line mentions `marker` (not mpiexec).
std::vector<pid_t> rank_pids(const std::string& marker) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_all(e.path().string() + "/cmdline");
    const std::string argv0 = cmdline.substr(0, cmdline.find('\0'));
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (argv0 == kShardtune && cmdline.find(marker) != std::string::npos) {
      out.push_back(static_cast<pid_t>(std::stol(name)));
    }
  }
  return out;
}

bool wait_for(const std::function<bool()>& cond, double seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  while (!cond()) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > seconds) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

}  // namespace

TEST(CheckpointCli, ResumedRunEqualsUninterruptedBitwise) {
  for (const std::string layout : {"--parallel.zero=1", "--parallel.tp=2"}) {
    SCOPED_TRACE(layout);
    const auto dir = temp_dir("ckpt_cli_resume");
    const auto ini = write_file(dir + "/c.ini", tiny_ini(dir));
    ASSERT_EQ(run(dir, "", "--config " + ini + " --checkpoint.every=3 --model.dropout=0.1 " + layout), 0)
        << read_all(dir + "/log.txt");
    const auto full = losses(dir + "/run/metrics.jsonl");
    ASSERT_EQ(full.size(), 6u);
    ASSERT_EQ(run(dir, "",
                  "--config " + ini + " --model.dropout=0.1 --train.out_dir=" + dir +
                      "/resumed --checkpoint.dir=" + dir + "/ckpt2 --resume " + dir +
                      "/ckpt/step-00000003.h5 " + layout),
              0)
        << read_all(dir + "/log.txt");
    const auto resumed = losses(dir + "/resumed/metrics.jsonl");
    ASSERT_EQ(resumed.size(), 3u);
    for (int s = 4; s <= 6; ++s) EXPECT_EQ(resumed.at(s), full.at(s)) << "step " << s;
    EXPECT_EQ(io::read_checkpoint_info(io::resolve_checkpoint(dir + "/ckpt2")).step, 6);
  }
}

TEST(CheckpointCli, SigtermOnEveryRankOrSigusr1OnOneCheckpointsAndExits75) {
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant == 0 ? "SIGTERM to both ranks" : "SIGUSR1 to rank processes[1] only");
    const auto dir = temp_dir("ckpt_cli_signal" + std::to_string(variant));
    const auto ini = write_file(dir + "/c.ini", tiny_ini(dir));
    const pid_t job = spawn(dir, "", "--config " + ini + " --train.steps=100000");
    ASSERT_TRUE(wait_for([&] { return losses(dir + "/run/metrics.jsonl").size() >= 2; }, 120))
        << read_all(dir + "/log.txt");
    const auto pids = rank_pids(dir + "/c.ini");
    ASSERT_EQ(pids.size(), 2u);
    if (variant == 0) {
      for (pid_t p : pids) kill(p, SIGTERM);
    } else {
      kill(pids[1], SIGUSR1);
    }
    // 75: stopped by a signal after saving (launch/signals.h kStoppedExitCode).
    EXPECT_EQ(wait_exit(job, 120), 75) << read_all(dir + "/log.txt");
    const auto steps = losses(dir + "/run/metrics.jsonl");
    ASSERT_FALSE(steps.empty());
    const auto info = io::read_checkpoint_info(io::resolve_checkpoint(dir + "/ckpt"));
    EXPECT_EQ(info.step, steps.rbegin()->first);
    EXPECT_LT(info.step, 100000);
    EXPECT_NE(read_all(dir + "/log.txt").find("stopping after step"), std::string::npos);
  }
}

TEST(CheckpointCli, SigkillDuringWriteKeepsLatestAndResumes) {
  const auto dir = temp_dir("ckpt_cli_sigkill");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir));
  const pid_t job = spawn(dir,
                          "-x SHARDTUNE_TEST_CHECKPOINT_PAUSE_S=120 "
                          "-x SHARDTUNE_TEST_CHECKPOINT_PAUSE_STEP=4",
                          "--config " + ini + " --checkpoint.every=2", kHookedShardtune);
  const std::string pid_file = dir + "/ckpt/pause-rank1.pid";
  ASSERT_TRUE(wait_for([&] { return fs::exists(pid_file) && !read_all(pid_file).empty(); }, 120))
      << read_all(dir + "/log.txt");
  // Rank 1 is inside the write of step 4 (data written, file not closed), under this run's
  // unique temporary name.
  const auto step4_tmp = [&] {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir + "/ckpt")) {
      const auto n = e.path().filename().string();
      if (n.rfind("step-00000004.h5.", 0) == 0 && n.size() > 4 &&
          n.compare(n.size() - 4, 4, ".tmp") == 0) {
        out.push_back(n);
      }
    }
    return out;
  };
  EXPECT_EQ(step4_tmp().size(), 1u);
  kill(static_cast<pid_t>(std::stol(read_all(pid_file))), SIGKILL);
  const int code = wait_exit(job, 120);
  EXPECT_NE(code, 0);
  EXPECT_NE(code, -1) << "the job did not end after a rank was killed";
  EXPECT_FALSE(fs::exists(dir + "/ckpt/step-00000004.h5"));
  const auto latest = io::resolve_checkpoint(dir + "/ckpt");
  EXPECT_EQ(latest, dir + "/ckpt/step-00000002.h5");
  // Every tensor of `latest` reads back and passes its checksums.
  for (const auto& e : io::list_checkpoint_tensors(latest)) {
    std::vector<io::CheckpointTensor> t{
        {e.path, torch::empty(e.shape, e.dtype == "uint8" ? torch::kByte : torch::kFloat)}};
    EXPECT_NO_THROW(io::load_checkpoint_tensors(latest, t)) << e.path;
  }
  ASSERT_EQ(run(dir, "", "--config " + ini + " --checkpoint.every=2 --resume auto"), 0)
      << read_all(dir + "/log.txt");
  EXPECT_EQ(io::read_checkpoint_info(io::resolve_checkpoint(dir + "/ckpt")).step, 6);
  EXPECT_TRUE(step4_tmp().empty()) << "the resumed run (same run id) removes its stale temporary";
  EXPECT_NE(read_all(dir + "/log.txt").find("resumed from " + latest + " at step 2"),
            std::string::npos);
}

TEST(CheckpointCli, CorruptedCheckpointFailsOnEveryRankAndChangesNothing) {
  const auto dir = temp_dir("ckpt_cli_corrupt");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir));
  ASSERT_EQ(run(dir, "", "--config " + ini + " --train.steps=2"), 0) << read_all(dir + "/log.txt");
  const auto file = dir + "/ckpt/step-00000002.h5";
  // Flip one byte inside the stored data of the embedding's exp_avg (found by its bytes).
  const std::string victim = "/optimizer/model.embed_tokens.weight/exp_avg";
  std::vector<io::CheckpointTensor> t{{victim, torch::empty({260, 32})}};
  io::load_checkpoint_tensors(file, t);
  auto bytes = read_all(file);
  const auto* data = static_cast<const char*>(t[0].tensor.data_ptr());
  const auto pos = bytes.find(std::string(data + 4096, 256));
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 100] ^= 0x10;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  const auto listing = [&] {
    std::string s;
    for (const auto& e : fs::directory_iterator(dir + "/ckpt")) {
      s += e.path().filename().string() + ":" + std::to_string(fs::file_size(e.path())) + " ";
    }
    return s + read_all(dir + "/ckpt/latest");
  };
  const auto before = listing();
  fs::remove(dir + "/log.txt");
  EXPECT_EQ(run(dir, "", "--config " + ini + " --train.steps=4 --resume auto"), 2);
  const auto log = read_all(dir + "/log.txt");
  size_t errors = 0;
  for (size_t p = log.find("shardtune: error"); p != std::string::npos;
       p = log.find("shardtune: error", p + 1)) {
    ++errors;
  }
  EXPECT_EQ(errors, 1u) << log;
  EXPECT_NE(log.find(file), std::string::npos) << log;
  EXPECT_NE(log.find(victim + " fails its checksum"), std::string::npos) << log;
  EXPECT_EQ(listing(), before);
  EXPECT_EQ(read_all(file), bytes);
}
