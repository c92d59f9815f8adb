// shardtune_hooked: the shardtune executable plus the test hooks of launch/hooks.h, driven by the
// test-only environment variables of base/env.h. Tests run it where they need a rank to fail
// mid-training or to pause inside a checkpoint write; the shardtune executable reads neither.
//   SHARDTUNE_TEST_THROW_AT_STEP=N            throw before step N
//   SHARDTUNE_TEST_CHECKPOINT_PAUSE_S=S       inside every checkpoint write (after the data, before
//   SHARDTUNE_TEST_CHECKPOINT_PAUSE_STEP=N    the close; only at step N if set) write
//                                             <dir>/pause-rank<r>.pid, then sleep S seconds
//   SHARDTUNE_TEST_SETUP_PAUSE_S=S            during set-up write SHARDTUNE_TEST_SETUP_PAUSE_FILE
//                                             .<rank> (if set), then sleep S seconds
//   SHARDTUNE_TEST_NAN_AT_STEP=N or N-M       before step N (each of N..M), on rank
//   SHARDTUNE_TEST_NAN_RANK=R (default 0)     R, write NaN into the first element of the first
//   SHARDTUNE_TEST_NAN_TARGET=grad|weight     trainable parameter's gradient (default; the step
//                                             alone is non-finite) or of the last one's weight
//                                             (every later step is)
//   SHARDTUNE_TEST_FAULT_READING=PATH         during set-up, on rank R, raise SIGBUS while PATH
//   SHARDTUNE_TEST_FAULT_RANK=R (default 0)   is marked as being read (the fault report's case)
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "base/env.h"
#include "base/reading.h"
#include "launch/cli.h"
#include "launch/hooks.h"

using namespace shardtune;

int main(int argc, char** argv) {
  launch::TestHooks hooks;
  if (const char* at = base::read_env(base::kEnvTestThrowAtStep)) {
    const std::string text = at;
    hooks.before_step = [text](int64_t step) {
      if (step == std::atoll(text.c_str())) {
        throw std::runtime_error(std::string("test hook ") + base::kEnvTestThrowAtStep + "=" +
                                 text);
      }
    };
  }
  if (const char* seconds = base::read_env(base::kEnvTestCheckpointPauseSeconds)) {
    const double pause = std::atof(seconds);
    const char* at = base::read_env(base::kEnvTestCheckpointPauseStep);
    const int64_t only_step = at ? std::atoll(at) : -1;
    hooks.inside_checkpoint_write = [pause, only_step](const std::string& dir, int64_t step,
                                                       int rank) {
      if (only_step >= 0 && step != only_step) return;
      {
        std::ofstream((std::filesystem::path(dir) / ("pause-rank" + std::to_string(rank) + ".pid"))
                          .string())
            << ::getpid() << "\n";
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(pause));
    };
  }
  if (const char* at = base::read_env(base::kEnvTestNanAtStep)) {
    const std::string range = at;
    const auto dash = range.find('-');
    const int64_t first = std::atoll(range.c_str());
    const int64_t last = dash == std::string::npos ? first : std::atoll(range.c_str() + dash + 1);
    const char* rank_text = base::read_env(base::kEnvTestNanRank);
    const int on_rank = rank_text ? std::atoi(rank_text) : 0;
    const char* target_text = base::read_env(base::kEnvTestNanTarget);
    const bool weight = target_text && std::string(target_text) == "weight";
    hooks.before_step_parameters = [=](int64_t step, int rank,
                                       const std::vector<core::NamedParameter>& trainable) {
      if (step < first || step > last || rank != on_rank || trainable.empty()) return;
      torch::NoGradGuard no_grad;
      // A gradient: the first parameter's (its norm is then NaN). A weight: the last parameter's
      // (the output side, used by every token; the first is an embedding row that may be unused).
      const auto& p = weight ? trainable.back().param : trainable.front().param;
      auto target = weight ? p : p.grad();
      target.view(-1)[0].fill_(std::numeric_limits<double>::quiet_NaN());
    };
  }
  if (const char* seconds = base::read_env(base::kEnvTestSetupPauseSeconds)) {
    const double pause = std::atof(seconds);
    const char* file = base::read_env(base::kEnvTestSetupPauseFile);
    const std::string path = file ? file : "";
    hooks.during_setup = [pause, path](int rank) {
      if (!path.empty()) std::ofstream(path + "." + std::to_string(rank)) << ::getpid() << "\n";
      std::this_thread::sleep_for(std::chrono::duration<double>(pause));
    };
  }
  if (const char* path = base::read_env(base::kEnvTestFaultReading)) {
    const char* rank_text = base::read_env(base::kEnvTestFaultRank);
    const int on_rank = rank_text ? std::atoi(rank_text) : 0;
    const std::string file = path;
    // Runs after the set-up pause, if both are set.
    hooks.during_setup = [file, on_rank, pause = hooks.during_setup](int rank) {
      if (pause) pause(rank);
      if (rank != on_rank) return;
      const base::ReadingFile reading(file);
      std::raise(SIGBUS);
    };
  }
  return launch::run_cli(argc, argv, hooks);
}
