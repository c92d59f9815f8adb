// A Communicator decorator for benchmarks: forwards every collective to the wrapped one and counts
// calls and payload bytes (the tensor a rank passes in: all-reduce/broadcast t, all-gather in,
// reduce-scatter in), per op. Used to measure the communication volume of a training step against
// the analytical (Megatron) formula.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace shardtune::bench {

class CountingCommunicator final : public parallel::Communicator {
 public:
  struct Count {
    int64_t calls = 0;
    int64_t bytes = 0;
  };
  explicit CountingCommunicator(std::shared_ptr<parallel::Communicator> inner)
      : Communicator(inner->rank(), inner->size(), inner->label()), inner_(std::move(inner)) {}
  std::string backend() const override { return inner_->backend(); }

  parallel::WorkPtr all_reduce_async(torch::Tensor& t, parallel::ReduceOp op) override {
    add("all_reduce", t);
    return inner_->all_reduce_async(t, op);
  }
  parallel::WorkPtr all_gather_async(torch::Tensor& out, const torch::Tensor& in) override {
    add("all_gather", in);
    return inner_->all_gather_async(out, in);
  }
  parallel::WorkPtr reduce_scatter_async(torch::Tensor& out, const torch::Tensor& in,
                                         parallel::ReduceOp op) override {
    add("reduce_scatter", in);
    return inner_->reduce_scatter_async(out, in, op);
  }
  parallel::WorkPtr broadcast_async(torch::Tensor& t, int root) override {
    add("broadcast", t);
    return inner_->broadcast_async(t, root);
  }
  void barrier() override { inner_->barrier(); }

  const std::map<std::string, Count>& counts() const { return counts_; }
  void reset() { counts_.clear(); }
  int64_t total_bytes() const {
    int64_t b = 0;
    for (const auto& [op, c] : counts_) b += c.bytes;
    return b;
  }

 private:
  void add(const std::string& op, const torch::Tensor& t) {
    auto& c = counts_[op];
    ++c.calls;
    c.bytes += t.numel() * static_cast<int64_t>(t.element_size());
  }
  std::shared_ptr<parallel::Communicator> inner_;
  std::map<std::string, Count> counts_;
};

}  // namespace shardtune::bench
