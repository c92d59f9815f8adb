#include "mpi_test_main.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <string>

namespace shardtune::testing {

namespace {
launch::MpiRuntime* g_runtime = nullptr;

// Prints only failures, tagged with the rank, for ranks other than 0.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed()) {
      std::printf("[rank %d] %s:%d: %s\n", rank_, r.file_name() ? r.file_name() : "?",
                  r.line_number(), r.summary());
    }
  }

 private:
  int rank_;
};
}  // namespace

launch::MpiRuntime& mpi_runtime() { return *g_runtime; }

}  // namespace shardtune::testing

int main(int argc, char** argv) {
  int failed = 1;
  {
    shardtune::launch::MpiRuntime runtime(&argc, &argv);
    if (argc > 1 && std::string(argv[1]) == "--abort-test") {
      // ctest's abort check: rank 1 fails while the others wait in a barrier it never enters;
      // launch::abort_all must end them all with its code (3), not leave them hanging.
      if (runtime.rank() == 1) shardtune::launch::abort_all(3);
      MPI_Barrier(MPI_COMM_WORLD);
      std::printf("[mpi] barrier returned: abort_all did not end the job\n");
      return 0;
    }
    shardtune::testing::g_runtime = &runtime;
    ::testing::InitGoogleTest(&argc, argv);
    if (runtime.rank() != 0) {
      auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
      delete listeners.Release(listeners.default_result_printer());
      listeners.Append(new shardtune::testing::RankFailurePrinter(runtime.rank()));
    }
    const int local = RUN_ALL_TESTS();
    MPI_Allreduce(&local, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    shardtune::testing::g_runtime = nullptr;
  }
  return failed;
}
