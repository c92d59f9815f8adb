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

namespace {
// Equal dtypes, and the whole side (out for all_gather, in for reduce_scatter) holding `size`
// times the other side's elements; `describe` turns what is wrong into the error message.
template <typename Describe>
void check_sizes(const torch::Tensor& out, const torch::Tensor& in, bool out_is_whole, int size,
                 Describe&& describe) {
  if (out.scalar_type() != in.scalar_type()) {
    throw CommunicationError(describe(std::string("out dtype ") + c10::toString(out.scalar_type()) +
                                      " differs from in dtype " + c10::toString(in.scalar_type())));
  }
  const auto& whole = out_is_whole ? out : in;
  const auto& piece = out_is_whole ? in : out;
  if (whole.numel() != piece.numel() * size) {
    const std::string whole_name = out_is_whole ? "out" : "in";
    const std::string piece_name = out_is_whole ? "in" : "out";
    throw CommunicationError(describe(whole_name + " has " + std::to_string(whole.numel()) +
                                      " elements, expected size " + std::to_string(size) + " x " +
                                      piece_name + " " + std::to_string(piece.numel())));
  }
}
}  // namespace

void Communicator::check_all_gather_sizes(const torch::Tensor& out,
                                          const torch::Tensor& in) const {
  check_sizes(out, in, /*out_is_whole=*/true, size_,
              [&](const std::string& what) { return describe("all_gather", what); });
}

void Communicator::check_reduce_scatter_sizes(const torch::Tensor& out,
                                              const torch::Tensor& in) const {
  check_sizes(out, in, /*out_is_whole=*/false, size_,
              [&](const std::string& what) { return describe("reduce_scatter", what); });
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
