#include "base/env.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace shardtune::base {

const std::vector<EnvVar>& environment_variables() {
  static const std::vector<EnvVar> list = {
      {kEnvThreads,
       "intra-op threads per rank (a positive integer); default: the CPUs of the rank's affinity "
       "mask divided by the ranks sharing them",
       "launch/bootstrap.cpp", false},
      {kEnvMpiNonblocking,
       "1 = keep every MPI reduction non-blocking; default: reductions of 1 MiB and more run "
       "blocking (measured faster with Open MPI 4.1, docs/benchmarks-comm.md)",
       "launch/bootstrap.cpp", false},
      {kEnvUpdateGolden, "rewrite tests/golden/*.txt from the current build instead of checking",
       "tests/test_train.cpp", true},
      {kEnvTestVerbose, "print per-step figures of the multi-rank strategy tests",
       "tests/test_strategies_mpi.cpp", true},
      {kEnvTestThrowAtStep, "throw on this rank before step N (a failing rank mid-training)",
       "tests/hooked_shardtune.cpp", true},
      {kEnvTestCheckpointPauseSeconds,
       "sleep this long inside every checkpoint write, after the data and before the close, "
       "after writing <checkpoint dir>/pause-rank<r>.pid (to kill a rank mid-write)",
       "tests/hooked_shardtune.cpp", true},
      {kEnvTestCheckpointPauseStep, "pause only in the checkpoint of this step",
       "tests/hooked_shardtune.cpp", true},
  };
  return list;
}

const char* read_env(std::string_view name) {
  for (const auto& var : environment_variables()) {
    if (name != var.name) continue;
    const char* value = std::getenv(var.name);
    return value && *value ? value : nullptr;
  }
  throw std::logic_error("read_env: " + std::string(name) +
                         " is not in base/env.h's list of environment variables");
}

}  // namespace shardtune::base
