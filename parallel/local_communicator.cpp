#include "parallel/local_communicator.h"

namespace shardtune::parallel {

namespace {
WorkPtr completed() { return std::make_shared<CompletedWork>(); }
}  // namespace

LocalCommunicator::LocalCommunicator(std::string label) : Communicator(0, 1, std::move(label)) {}

WorkPtr LocalCommunicator::all_reduce_async(torch::Tensor& t, ReduceOp op) {
  check_avg_dtype(t, op, "all_reduce");
  return completed();
}

WorkPtr LocalCommunicator::all_gather_async(torch::Tensor& out, const torch::Tensor& in) {
  check_all_gather_sizes(out, in);
  // in may be out itself or a view of it; copy_ of identical memory is harmless.
  if (!in.is_same(out)) out.copy_(in.reshape(out.sizes()));
  return completed();
}

WorkPtr LocalCommunicator::reduce_scatter_async(torch::Tensor& out, const torch::Tensor& in,
                                                ReduceOp op) {
  check_reduce_scatter_sizes(out, in);
  check_avg_dtype(in, op, "reduce_scatter");
  if (!in.is_same(out)) out.copy_(in.reshape(out.sizes()));
  return completed();
}

WorkPtr LocalCommunicator::broadcast_async(torch::Tensor& t, int root) {
  check_root(root);
  return completed();
}

}  // namespace shardtune::parallel
