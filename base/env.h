// Every environment variable with a meaning to ShardTune, in one list. Each is read in exactly one
// place (`read_by`) and turned into a parameter there; code below launch/ reads none. Configuration
// belongs in the INI file / command line; the few variables are process-level knobs that must act
// before the configuration is parsed, or test hooks.
//
// Test-only variables are read by test programs (tests/), never by the shardtune executable.
#pragma once

#include <string_view>
#include <vector>

namespace shardtune::base {

struct EnvVar {
  const char* name;
  const char* meaning;
  const char* read_by;  // the one file that reads it
  bool test_only;
  // Set by the MPI launcher, not by users: read, never documented as a ShardTune setting.
  bool set_by_launcher = false;
};

inline constexpr const char* kEnvThreads = "SHARDTUNE_THREADS";
inline constexpr const char* kEnvMpiNonblocking = "SHARDTUNE_MPI_NONBLOCKING";
inline constexpr const char* kEnvUpdateGolden = "SHARDTUNE_UPDATE_GOLDEN";
inline constexpr const char* kEnvTestVerbose = "SHARDTUNE_TEST_VERBOSE";
inline constexpr const char* kEnvTestThrowAtStep = "SHARDTUNE_TEST_THROW_AT_STEP";
inline constexpr const char* kEnvTestCheckpointPauseSeconds = "SHARDTUNE_TEST_CHECKPOINT_PAUSE_S";
inline constexpr const char* kEnvTestCheckpointPauseStep = "SHARDTUNE_TEST_CHECKPOINT_PAUSE_STEP";
inline constexpr const char* kEnvTestNanAtStep = "SHARDTUNE_TEST_NAN_AT_STEP";
inline constexpr const char* kEnvTestNanTarget = "SHARDTUNE_TEST_NAN_TARGET";
inline constexpr const char* kEnvTestNanRank = "SHARDTUNE_TEST_NAN_RANK";
inline constexpr const char* kEnvTestSetupPauseSeconds = "SHARDTUNE_TEST_SETUP_PAUSE_S";
inline constexpr const char* kEnvTestSetupPauseFile = "SHARDTUNE_TEST_SETUP_PAUSE_FILE";
inline constexpr const char* kEnvTestFaultReading = "SHARDTUNE_TEST_FAULT_READING";
inline constexpr const char* kEnvTestFaultRank = "SHARDTUNE_TEST_FAULT_RANK";
inline constexpr const char* kEnvOmpiWorldSize = "OMPI_COMM_WORLD_SIZE";
inline constexpr const char* kEnvSlurmStepId = "SLURM_STEP_ID";

// The list, in the order above.
const std::vector<EnvVar>& environment_variables();

// The value of listed variable `name`, or nullptr when it is unset or empty. Throws
// std::logic_error for a name that is not in the list, so every variable read is documented.
const char* read_env(std::string_view name);

}  // namespace shardtune::base
