#include "parallel/communicator.h"

#include <sstream>

namespace shardtune::parallel {

const char* to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kAvg: return "avg";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kMin: return "min";
  }
  return "?";
}

Communicator::Communicator(int rank, int size, std::string label)
    : rank_(rank), size_(size), label_(std::move(label)) {
  if (size_ < 1 || rank_ < 0 || rank_ >= size_) {
    throw CommunicationError("[parallel] communicator '" + label_ + "': rank " +
                             std::to_string(rank_) + " is outside a group of " +
                             std::to_string(size_));
  }
}

std::string Communicator::name() const { return backend() + ":" + label_; }

std::string Communicator::describe(const char* op_name, const std::string& what) const {
  std::ostringstream s;
  s << "[parallel] " << op_name << " on " << name() << " rank " << rank_ << "/" << size_ << ": "
    << what;
  return s.str();
}

void Communicator::check_all_gather_sizes(const torch::Tensor& out,
                                          const torch::Tensor& in) const {
  if (out.scalar_type() != in.scalar_type()) {
    throw CommunicationError(describe("all_gather", std::string("out dtype ") +
                                                        c10::toString(out.scalar_type()) +
                                                        " differs from in dtype " +
                                                        c10::toString(in.scalar_type())));
  }
  if (out.numel() != in.numel() * size_) {
    throw CommunicationError(describe(
        "all_gather", "out has " + std::to_string(out.numel()) + " elements, expected size " +
                          std::to_string(size_) + " x in " + std::to_string(in.numel())));
  }
}

void Communicator::check_reduce_scatter_sizes(const torch::Tensor& out,
                                              const torch::Tensor& in) const {
  if (out.scalar_type() != in.scalar_type()) {
    throw CommunicationError(describe("reduce_scatter", std::string("out dtype ") +
                                                            c10::toString(out.scalar_type()) +
                                                            " differs from in dtype " +
                                                            c10::toString(in.scalar_type())));
  }
  if (in.numel() != out.numel() * size_) {
    throw CommunicationError(describe(
        "reduce_scatter", "in has " + std::to_string(in.numel()) + " elements, expected size " +
                              std::to_string(size_) + " x out " + std::to_string(out.numel())));
  }
}

void Communicator::check_root(int root) const {
  if (root < 0 || root >= size_) {
    throw CommunicationError(describe("broadcast", "root " + std::to_string(root) +
                                                       " is outside the group of " +
                                                       std::to_string(size_)));
  }
}

void Communicator::check_avg_dtype(const torch::Tensor& t, ReduceOp op,
                                   const char* op_name) const {
  if (op == ReduceOp::kAvg && !c10::isFloatingType(t.scalar_type())) {
    throw CommunicationError(describe(
        op_name, std::string("avg needs a floating dtype, got ") + c10::toString(t.scalar_type()) +
                     " (use sum and divide as you see fit)"));
  }
}

void Communicator::all_reduce(torch::Tensor& t, ReduceOp op) { all_reduce_async(t, op)->wait(); }

void Communicator::all_gather(torch::Tensor& out, const torch::Tensor& in) {
  all_gather_async(out, in)->wait();
}

void Communicator::reduce_scatter(torch::Tensor& out, const torch::Tensor& in, ReduceOp op) {
  reduce_scatter_async(out, in, op)->wait();
}

void Communicator::broadcast(torch::Tensor& t, int root) { broadcast_async(t, root)->wait(); }

}  // namespace shardtune::parallel
