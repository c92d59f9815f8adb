// Test-only hooks into a run: what tests/hooked_shardtune.cpp (a test program) passes to run_cli
// so that tests can make a rank fail mid-training or pause inside a checkpoint write. The shardtune
// executable passes none, and production code reads no test setting itself.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace shardtune::launch {

struct TestHooks {
  // Called on every rank before step `step` (1-based) of Trainer::step; may throw.
  std::function<void(int64_t step)> before_step;
  // Called on every rank inside each checkpoint write, after its data and before the close
  // (io::SaveOptions::before_close).
  std::function<void(const std::string& dir, int64_t step, int rank)> inside_checkpoint_write;
};

}  // namespace shardtune::launch
