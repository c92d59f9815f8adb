// LocalCommunicator: a group of one rank. Every collective is the identity (the sum, average, max
// or min of one value is that value), done at call time, and returns a completed Work.
//
// Used for single-process runs and for axes of size 1 in the rank grid (tp = 1 or dp = 1), so that
// layers can call collectives unconditionally at no cost. It still checks sizes, dtypes and roots
// like the multi-rank backends, so a bug shows up in a one-process test too. Works for tensors on
// any device. Thread-safety: none needed beyond the tensors' own.
#pragma once

#include "parallel/communicator.h"

namespace shardtune::parallel {

class LocalCommunicator final : public Communicator {
 public:
  explicit LocalCommunicator(std::string label = "local");

  std::string backend() const override { return "local"; }

  WorkPtr all_reduce_async(torch::Tensor& t, ReduceOp op) override;
  // out = in, reshaped to out's shape.
  WorkPtr all_gather_async(torch::Tensor& out, const torch::Tensor& in) override;
  // out = in, reshaped to out's shape.
  WorkPtr reduce_scatter_async(torch::Tensor& out, const torch::Tensor& in, ReduceOp op) override;
  WorkPtr broadcast_async(torch::Tensor& t, int root) override;
  void barrier() override {}
};

}  // namespace shardtune::parallel
