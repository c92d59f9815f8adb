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
      {kEnvTestNanAtStep,
       "before step N (or each step of a range N-M), write NaN into a trainable parameter's "
       "gradient or weight (a diverging run, for [train] on_nonfinite)",
       "tests/hooked_shardtune.cpp", true},
      {kEnvTestNanTarget, "what SHARDTUNE_TEST_NAN_AT_STEP poisons: grad (default) | weight",
       "tests/hooked_shardtune.cpp", true},
      {kEnvTestNanRank, "the rank SHARDTUNE_TEST_NAN_AT_STEP acts on (default 0)",
       "tests/hooked_shardtune.cpp", true},
      {kEnvTestSetupPauseSeconds,
       "sleep this long during set-up (before the model and data are loaded), after writing "
       "SHARDTUNE_TEST_SETUP_PAUSE_FILE.<rank>",
       "tests/hooked_shardtune.cpp", true},
      {kEnvTestSetupPauseFile, "the file (plus .<rank>) written when the set-up pause begins",
       "tests/hooked_shardtune.cpp", true},
      {kEnvTestFaultReading,
       "during set-up, while this file is marked as being read (base::ReadingFile), raise "
       "SIGBUS on rank SHARDTUNE_TEST_FAULT_RANK (a file that faults its reader on one rank)",
       "tests/hooked_shardtune.cpp", true},
      {kEnvTestFaultRank, "the rank SHARDTUNE_TEST_FAULT_READING acts on (default 0)",
       "tests/hooked_shardtune.cpp", true},
      {kEnvOmpiWorldSize,
       "set by Open MPI's mpirun: a rank that must end the job after an error it could not agree "
       "on exits (mpirun ends the others) instead of calling MPI_Abort",
       "launch/agree.cpp", false, true},
      {kEnvSlurmStepId, "set by srun: the job is ended with MPI_Abort after such an error",
       "launch/agree.cpp", false, true},
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
