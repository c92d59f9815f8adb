#include "parallel/tp_ops.h"

#include <ATen/CPUGeneratorImpl.h>

#include "base/errors.h"

namespace shardtune::parallel {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Autograd functions carry the communicator as a raw pointer in saved_data (IValue has no slot for
// it); the TpGroup outlives every graph built with it because the model owns it.
int64_t as_handle(Communicator* c) { return reinterpret_cast<int64_t>(c); }
Communicator& from_handle(const c10::IValue& v) {
  return *reinterpret_cast<Communicator*>(v.toInt());
}

torch::Tensor all_reduced(const torch::Tensor& x, Communicator& comm) {
  auto y = x.contiguous().clone();
  comm.all_reduce(y, ReduceOp::kSum);
  return y;
}

torch::Tensor gathered_last_dim(const torch::Tensor& x, Communicator& comm) {
  auto in = x.contiguous();
  auto out = torch::empty({comm.size() * in.numel()}, in.options());
  comm.all_gather(out, in);
  std::vector<int64_t> shape{comm.size()};
  shape.insert(shape.end(), in.sizes().begin(), in.sizes().end());
  // [size, ..., n] -> cat over the last dim in rank order.
  return torch::cat(out.view(shape).unbind(0), -1);
}

torch::Tensor local_slice_last_dim(const torch::Tensor& x, Communicator& comm) {
  const int64_t n = x.size(-1);
  if (n % comm.size() != 0) {
    throw CommunicationError(comm.name() + ": scatter_to_tp of a last dim of " +
                             std::to_string(n) + " over " + std::to_string(comm.size()) +
                             " ranks (must divide evenly)");
  }
  const int64_t part = n / comm.size();
  return x.narrow(-1, comm.rank() * part, part).contiguous();
}

struct CopyToTp : torch::autograd::Function<CopyToTp> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, int64_t comm) {
    ctx->saved_data["comm"] = comm;
    return x.view_as(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    return {all_reduced(grad[0], from_handle(ctx->saved_data["comm"])), torch::Tensor()};
  }
};

struct ReduceFromTp : torch::autograd::Function<ReduceFromTp> {
  static torch::Tensor forward(AutogradContext*, const torch::Tensor& x, int64_t comm) {
    return all_reduced(x, *reinterpret_cast<Communicator*>(comm));
  }
  static variable_list backward(AutogradContext*, variable_list grad) {
    return {grad[0], torch::Tensor()};
  }
};

struct GatherFromTp : torch::autograd::Function<GatherFromTp> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, int64_t comm) {
    ctx->saved_data["comm"] = comm;
    return gathered_last_dim(x, *reinterpret_cast<Communicator*>(comm));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    return {local_slice_last_dim(grad[0], from_handle(ctx->saved_data["comm"])), torch::Tensor()};
  }
};

struct ScatterToTp : torch::autograd::Function<ScatterToTp> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, int64_t comm) {
    ctx->saved_data["comm"] = comm;
    return local_slice_last_dim(x, *reinterpret_cast<Communicator*>(comm));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    return {gathered_last_dim(grad[0], from_handle(ctx->saved_data["comm"])), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor copy_to_tp(const torch::Tensor& x, const TpGroup& tp) {
  if (!tp.active()) return x;
  return CopyToTp::apply(x, as_handle(tp.comm.get()));
}

torch::Tensor reduce_from_tp(const torch::Tensor& x, const TpGroup& tp) {
  if (!tp.active()) return x;
  return ReduceFromTp::apply(x, as_handle(tp.comm.get()));
}

torch::Tensor gather_from_tp(const torch::Tensor& x, const TpGroup& tp) {
  if (!tp.active()) return x;
  return GatherFromTp::apply(x, as_handle(tp.comm.get()));
}

torch::Tensor scatter_to_tp(const torch::Tensor& x, const TpGroup& tp) {
  if (!tp.active()) return x;
  return ScatterToTp::apply(x, as_handle(tp.comm.get()));
}

// ---- RNG tracker --------------------------------------------------------------------------------

namespace {
at::Tensor state_for_seed(uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return gen.get_state();
}
at::Generator default_generator() { return at::detail::getDefaultCPUGenerator(); }
}  // namespace

void RngTracker::seed(uint64_t seed, int tp_rank) {
  auto gen = default_generator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
  states_.clear();
  states_["model-parallel"] = state_for_seed(seed + 2718 + static_cast<uint64_t>(tp_rank));
}

RngTracker::Fork::Fork(RngTracker& tracker, const std::string& name)
    : tracker_(tracker), name_(name) {
  auto it = tracker_.states_.find(name_);
  if (it == tracker_.states_.end()) {
    throw std::logic_error("RngTracker: no stream named '" + name_ + "' (seed() first)");
  }
  auto gen = default_generator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  saved_default_ = gen.get_state();
  gen.set_state(it->second);
}

RngTracker::Fork::~Fork() {
  auto gen = default_generator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  tracker_.states_[name_] = gen.get_state();
  gen.set_state(saved_default_);
}

std::map<std::string, at::Tensor> RngTracker::get_states() const {
  auto out = states_;
  auto gen = default_generator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  out["default"] = gen.get_state();
  return out;
}

void RngTracker::set_states(const std::map<std::string, at::Tensor>& states) {
  for (const auto& [name, state] : states) {
    if (name == "default") {
      auto gen = default_generator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(state);
    } else {
      states_[name] = state.clone();
    }
  }
}

RngTracker& rng_tracker() {
  static RngTracker tracker;
  return tracker;
}

}  // namespace shardtune::parallel
