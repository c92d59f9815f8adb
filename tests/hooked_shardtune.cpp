// shardtune_hooked: the shardtune executable plus the test hooks of launch/hooks.h, driven by the
// test-only environment variables of base/env.h. Tests run it where they need a rank to fail
// mid-training or to pause inside a checkpoint write; the shardtune executable reads neither.
//   SHARDTUNE_TEST_THROW_AT_STEP=N            throw before step N
//   SHARDTUNE_TEST_CHECKPOINT_PAUSE_S=S       inside every checkpoint write (after the data, before
//   SHARDTUNE_TEST_CHECKPOINT_PAUSE_STEP=N    the close; only at step N if set) write
//                                             <dir>/pause-rank<r>.pid, then sleep S seconds
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "base/env.h"
#include "launch/cli.h"

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
  return launch::run_cli(argc, argv, hooks);
}
