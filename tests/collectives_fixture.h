// The fixture of the multi-rank communicator tests (test_parallel_collectives.cpp,
// test_parallel_mpi_grid.cpp): the world communicator of the test's MPI runtime, this rank r_ and
// the world size n_, and closed forms in them. Not in an anonymous namespace: both files' tests
// share this one fixture class.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "mpi_test_main.h"
#include "parallel/mpi_communicator.h"

namespace shardtune::parallel {

class Collectives : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = shardtune::testing::mpi_runtime().world();
    r_ = world_->rank();
    n_ = world_->size();
  }
  // 1 + 2 + ... + n: the sum over ranks of (rank + 1).
  int64_t triangle() const { return static_cast<int64_t>(n_) * (n_ + 1) / 2; }

  std::shared_ptr<MpiCommunicator> world_;
  int r_ = 0;
  int n_ = 1;
};

inline void wait_by_polling(const WorkPtr& work) {
  // Exercise is_completed() (MPI_Test) as the DP bucket code will, then wait() as a no-op.
  while (!work->is_completed()) {
  }
  work->wait();
}

inline const std::vector<int64_t> kSizes = {1, 7, 1237, 1 << 18};
inline const std::vector<torch::ScalarType> kDtypes = {torch::kFloat, torch::kDouble, torch::kInt,
                                                torch::kLong, torch::kByte};

}  // namespace shardtune::parallel
