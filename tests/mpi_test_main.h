// gtest main for multi-rank tests (linked into tests that run under mpiexec): MPI init through
// launch::MpiRuntime, output from rank 0 only (failures on other ranks are printed, tagged), and
// every rank exits with the job's verdict. `--abort-test` instead checks launch::abort_all: rank 1
// aborts with code 3 while the others wait in a barrier.
#pragma once

#include "launch/bootstrap.h"

namespace shardtune::testing {
// The process's MPI runtime, valid while tests run.
launch::MpiRuntime& mpi_runtime();
}  // namespace shardtune::testing
